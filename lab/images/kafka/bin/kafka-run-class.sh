#!/usr/bin/env bash
# kafka-run-class.sh CLASS [ARGS...]: run a class from /opt/kafka/libs with the environment the
# official scripts read (KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS, KAFKA_OPTS).
set -euo pipefail
KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
java=${JAVA_HOME:+$JAVA_HOME/bin/}java
heap=${KAFKA_HEAP_OPTS:--Xmx256m}
perf=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
logging=${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=$KAFKA_HOME/config/tools-log4j2.yaml}
# shellcheck disable=SC2086
exec "$java" $heap $perf $logging ${KAFKA_OPTS:-} -cp "$KAFKA_HOME/libs/*" "$@"
