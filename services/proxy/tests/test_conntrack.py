# ruff: noqa: E501  (real conntrack output, one entry a line)
"""Which UDP conntrack entries the proxy deletes: pinned to an endpoint that is gone, or
made while a Service had no endpoint; others' entries are left alone."""

from __future__ import annotations

from skiff.proxy.iptables.conntrack import parse, stale

LISTING = "\n".join(
    [
        "udp      17 29 src=10.244.0.9 dst=10.96.0.60 sport=40000 dport=53 src=10.244.0.5 dst=10.244.0.9 sport=5353 dport=40000 [ASSURED] mark=0 use=1",
        "udp      17 25 src=10.244.0.9 dst=10.96.0.61 sport=40001 dport=53 [UNREPLIED] src=10.96.0.61 dst=10.244.0.9 sport=53 dport=40001 mark=0 use=1",
        "udp      17 20 src=192.168.77.2 dst=192.168.77.1 sport=40002 dport=30053 src=10.244.0.6 dst=192.168.77.2 sport=5353 dport=40002 mark=0 use=1",
        "udp      17 20 src=10.244.0.9 dst=8.8.8.8 sport=40003 dport=53 src=8.8.8.8 dst=10.244.0.9 sport=53 dport=40003 mark=0 use=1",
        "tcp      6 431999 ESTABLISHED src=10.244.0.9 dst=10.96.0.60 sport=1 dport=53 src=10.244.0.5 dst=10.244.0.9 sport=5353 dport=1 [ASSURED] mark=0 use=1",
        "conntrack v1.4.7 (conntrack-tools): 5 flow entries have been shown.",
    ]
)


def test_parse_reads_both_directions_of_udp_entries() -> None:
    entries = parse(LISTING)
    assert len(entries) == 4  # the TCP entry and the summary line are not UDP entries
    first = entries[0]
    assert (first.dst, first.dport, first.target, first.dnated) == (
        "10.96.0.60",
        53,
        "10.244.0.5:5353",
        True,
    )
    assert not entries[1].dnated


def test_stale_entries() -> None:
    entries = parse(LISTING)
    services = {
        ("10.96.0.60", 53): {"10.244.0.7:5353"},  # the endpoint moved
        ("10.96.0.61", 53): {"10.244.0.8:5353"},  # had none when the entry was made
        ("*", 30053): {"10.244.0.6:5353"},  # node port, endpoint still there
    }
    assert [(e.dst, e.sport) for e in stale(entries, services)] == [
        ("10.96.0.60", 40000),
        ("10.96.0.61", 40001),
    ]
    # Nothing changed: nothing to delete; a Service still without endpoints keeps its
    # un-NATed entries (nothing better to send them to); others' entries are never touched.
    services = {("10.96.0.60", 53): {"10.244.0.5:5353"}, ("10.96.0.61", 53): set()}
    assert stale(entries, services) == []
