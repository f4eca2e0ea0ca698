"""csaudit: audit the network flows of an Apache CloudStack cloud."""

__version__ = "0.1.0"
