#!/usr/bin/env bash
# kafka-consumer-groups.sh: org.apache.kafka.tools.consumer.group.ConsumerGroupCommand, with the tools' heap (TOOLS_HEAP_OPTS, default 256m) and logging.
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
export KAFKA_HEAP_OPTS="${TOOLS_HEAP_OPTS:--Xmx256m}"
# A short-lived client: quick start-up (C1 only, serial GC) matters more than peak speed.
export KAFKA_JVM_PERFORMANCE_OPTS="${TOOLS_JVM_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Djava.awt.headless=true}"
export KAFKA_LOG4J_OPTS="-Dlog4j2.configurationFile=$KAFKA_HOME/config/tools-log4j2.yaml"
exec "$KAFKA_HOME/bin/kafka-run-class.sh" org.apache.kafka.tools.consumer.group.ConsumerGroupCommand "$@"
