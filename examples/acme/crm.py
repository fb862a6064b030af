"""Run the Acme demo CRM from a checkout: ``python examples/acme/crm.py [--port 8089]``.

The service itself is :mod:`trunkline.agent.demo_crm` (so that an installed trunkline can
start it in demo mode); this script only runs it. Equivalent:
``python -m trunkline.agent.demo_crm``.
"""

from trunkline.agent.demo_crm import main

if __name__ == "__main__":
    main()
