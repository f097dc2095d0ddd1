"""metal-agent's Ironic plugin: the `direct-kexec` deploy interface and the hardware types that accept it."""
