"""The training step: losses, in-graph optimizers, and the compiler that captures one step as a graph."""
