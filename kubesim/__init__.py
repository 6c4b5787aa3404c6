"""kubesim: a Kubernetes API server emulator speaking the real wire protocol."""
