"""Changes one domain announces and another reacts to, without importing it.

The app factory connects the receivers: territory_rules says its territories
changed; programs, which builds on it, recomputes eligibility.
"""

from blinker import Namespace

_signals = Namespace()

# Sent after a territory's owner, region, parent or shape was saved.
# Keyword ``user``: who made the change.
territories_changed = _signals.signal("territories-changed")
