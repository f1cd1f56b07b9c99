"""One module per architecture, each with a trainable mixer and its ``to_dsf`` (see issue #3)."""
