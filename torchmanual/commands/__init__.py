"""Subcommands of the ``torchmanual`` CLI; see ``torchmanual.cli``."""
