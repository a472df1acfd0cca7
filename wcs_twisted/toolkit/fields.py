"""
Reading fields of a REST body (the dict a route handler gets) as the core methods do: booleans
may come as "true"/"false" strings from the demo pages; a wrong type is a 400 naming the field.
"""

from wcs_twisted.gateway.fields import read_boolean, read_text

__all__ = ["read_boolean", "read_text"]
