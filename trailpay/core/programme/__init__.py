"""The programme seen whole: metrics per partner and group, comparisons between groups,
and a partner's forecast. Pure, like the rest of the core: the adapters read the facts
and postings, the gateway renders."""
