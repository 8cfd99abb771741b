"""What every service is built from: settings, database, gRPC server, outbox/inbox, Kafka, auth, logging."""
