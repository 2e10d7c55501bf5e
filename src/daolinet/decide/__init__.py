"""Pure decisions: a PacketIn's parsed fields + the model view -> what to do
(route.py), whether two endpoints may talk and why (policy.py), and the
ICMP packets the distributed router answers with (icmp.py)."""
