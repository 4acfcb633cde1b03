#!/usr/bin/env bash
# kafka-server-start.sh server.properties: the broker/controller, with the server's heap (default 1g).
set -euo pipefail
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
export KAFKA_LOG4J_OPTS=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$KAFKA_HOME/config/log4j2.yaml}
exec "$KAFKA_HOME/bin/kafka-run-class.sh" kafka.Kafka "$@"
