"""Host-side tooling: deploy an artifact to a device, transports, budgets, profiles, reports, the CLI."""
