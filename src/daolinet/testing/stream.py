"""`python -m daolinet.testing.stream ...`: the tests' name for the lab's counting TCP stream
(daolinet.lab.stream, which the demo runs too)."""

from __future__ import annotations

from daolinet.lab.stream import main

if __name__ == "__main__":
    main()
