//! (in progress: owned by the coslocal helper) `coslocal`, the strict COS-compatible server.
