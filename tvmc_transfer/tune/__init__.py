"""The tuning engine (``engine.py``: MetaSchedule wired once, search strategies by name) and MetaSchedule's
extension points as tuning uses them: builder, runners, search wrapper, task scheduler, callbacks, the
measurement protocol (``measure.py``); ``tune_model`` (``model.py``) and ``tvmc records retime`` (``retime.py``)."""
