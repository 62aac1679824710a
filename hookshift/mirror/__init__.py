"""Copy (or forward) the callback path to API Gateway by editing nginx byte-preservingly.

Public API (used by the rehearsal, the cut-over and the benchmarks)::

    from hookshift.mirror.plan import MirrorOptions, make_plan  # options -> MirrorPlan (no writes)
    from hookshift.mirror.apply import apply_plan           # lock, nginx -t, backup, write, reload
    from hookshift.mirror.remove import remove_marked       # exact inverse of apply
    from hookshift.mirror.dnscheck import dns_warnings      # real DNS query to each resolver
    from hookshift.nginx.binary import nginx_version, test_config, reload

`plan` decides (pure), `render` holds the templates' choices and why (read it before changing
the layout), `apply`/`remove` are the only writers, `cli` is ``hookshift mirror``.
"""
