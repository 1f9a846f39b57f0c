"""Real servers on loopback, shared by the tests and the local demo stack."""
