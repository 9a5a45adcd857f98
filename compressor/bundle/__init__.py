"""The edge bundle of `compress package`: the archive and its manifest."""
