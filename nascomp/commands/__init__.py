"""One module per `nascomp` sub-command: argument definitions and the call into the library."""
