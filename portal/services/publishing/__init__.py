"""Publishing: manifests, package inspection and storage, and a developer's releases."""
