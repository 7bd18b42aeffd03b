"""The template's optional parts. Each imports the core (``mnist_lab`` outside this folder), never
another part, and is switched on by one entry of ``configs/defaults.yaml`` or by its own Makefile
target; ``make drop PART=<name>`` removes one, ``make drop`` lists them."""
