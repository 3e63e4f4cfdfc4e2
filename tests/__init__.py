"""simnet's tests. Packages, so that a unit and an integration test module may share a basename
(without them pytest stops at collection when two test modules share a name)."""
