"""Federated personalization on Flower: the same artifact on every client, only the shared part
of its trainable state on the wire.

    config   the run's settings (Flower's run config, one list of keys and defaults)
    shared   which state tensors are shared, payload bytes, and the checks a reply must pass
    client   the ClientApp: trains the artifact through the device runner (numpy + a runtime)
    server   the ServerApp: a Flower strategy over the shared tensors, bad replies refused
    local    a SuperLink and SuperNodes as local processes, and the Flower App directory

Torch-free: a client needs what the device runner needs, plus flwr.
"""
