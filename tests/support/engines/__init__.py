"""Engine stand-ins that speak each engine's real wire format (one module per engine)."""
