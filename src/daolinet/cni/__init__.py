"""daolinet's CNI plugin: `daolinet-cni` (shim.py) posts each call to the host's
agent, which does the work (daolinet.agent.cni); spec.py is the protocol."""
