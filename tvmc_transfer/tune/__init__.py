"""MetaSchedule's extension points as tuning uses them: builder, search strategies, task scheduler, callbacks."""
