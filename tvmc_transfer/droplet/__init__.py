"""Droplet search (Canesche, Pereira et al.): a search strategy of the tuning engine (``search.py``) over a
trace's decisions as axes (``space.py``), walked with a t-test (``walk.py``) in the cost model's neighbour order
(``order.py``); run on a model's tasks or as a phase (``phase.py``), with its report (``report.py``)."""
