"""What a kernel gets without tuning records: the schedule library shipped per CPU family (``library.py``, data in
``tvmc_transfer/data/``), the shipped cost model (``cost_model.py``), the checked and timed default schedules
(``schedules.py`` with ``checks.py``) and the cache that remembers them (``cache.py``)."""
