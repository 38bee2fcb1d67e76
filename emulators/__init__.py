"""Local HTTPS emulators of Entra ID, Microsoft Graph, Key Vault and Nylas sharing one World.

from emulators import Emulators, World
with Emulators.start() as emu:
    os.environ.update(emu.env())
"""

from .server import Emulators
from .world import Clock, Fault, Faults, World

__all__ = ["Clock", "Emulators", "Fault", "Faults", "World"]
