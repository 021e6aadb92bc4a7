"""Model versions: the registry, deployments, manifest signing and distribution."""
