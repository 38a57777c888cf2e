"""Pure libraries that know nothing of the app: SemVer, JSON errors with pointers,
configuration schemas, the outbound guard."""
