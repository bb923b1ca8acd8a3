"""Scale: the protocol and ALS on Apache Spark, and the cost curve against a single machine."""
