"""The iptables back end: rule generation (``rules``), the syncing proxier
(``proxier``) and the tool runner (``runner``)."""
