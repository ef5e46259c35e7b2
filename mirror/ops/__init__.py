"""Operations: metrics, logs with run ids, garbage collection, verification, plans and notifications."""
