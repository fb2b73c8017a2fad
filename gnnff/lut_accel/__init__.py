"""LUT-softmax accelerator emulator (bit-exact integer datapath) and the softmax backends used
by attention layers. Import from the submodules (``backends``, ``config``, ``softmax``, ...)."""
