//go:build integration

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/tagstream/tagstream/internal/testkit"
)

// natsServer is a nats-server process of one test, with its own port and JetStream store so that it can be
// killed and restarted.
type natsServer struct {
	t       *testing.T
	port    int
	dir     string
	logPath string
	proc    *process
	starts  int
}

// startNATS starts a nats-server with JetStream from TAGSTREAM_NATS_SERVER_BIN on a free loopback port.
func startNATS(t *testing.T) *natsServer {
	t.Helper()
	n := newNATS(t)
	n.start()
	return n
}

// newNATS prepares a nats-server on a free loopback port (chosen now) without starting it.
func newNATS(t *testing.T) *natsServer {
	t.Helper()
	dir := t.TempDir()
	n := &natsServer{t: t, port: testkit.FreePort(t), dir: dir, logPath: filepath.Join(dir, "nats-server.log")}
	t.Cleanup(func() {
		if n.proc != nil && n.proc.running() {
			n.proc.signal(syscall.SIGTERM, 10*time.Second)
			n.proc.killNow()
		}
	})
	return n
}

// URL returns the client URL.
func (n *natsServer) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// start (re)starts the server on the same port and store and waits until JetStream answers.
func (n *natsServer) start() {
	t := n.t
	t.Helper()
	n.starts++
	cmd := exec.Command(env.NATSServerBin, "-js", "-sd", filepath.Join(n.dir, "store"),
		"-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-n", "e2e-"+strconv.Itoa(n.port))
	n.proc = startReady(t, fmt.Sprintf("nats-server #%d", n.starts), cmd, n.logPath, 30*time.Second, func() bool {
		nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return false
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err = js.AccountInfo(ctx) // JetStream answers
		return err == nil
	})
}

// kill ends the server with SIGKILL (a crash) and returns the time.
func (n *natsServer) kill() time.Time {
	at := time.Now()
	n.proc.killNow()
	return at
}

// plainTempDir returns a temporary directory whose path has no characters but letters, digits, '-', '_' and '/'
// (t.TempDir carries the test name, commas and colons included), removed when the test ends.
func plainTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tagstream-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// kafkaServer is a private single-node Kafka (KRaft, combined broker and controller) started from
// TAGSTREAM_KAFKA_HOME, for the test that restarts the broker without touching the shared one.
type kafkaServer struct {
	t       *testing.T
	dir     string
	port    int
	props   string
	log4j   string
	logPath string
	proc    *process
	starts  int
}

// startKafka formats a fresh KRaft store, starts the broker and waits for a metadata round trip.
func startKafka(t *testing.T) *kafkaServer {
	t.Helper()
	dir := plainTempDir(t) // log.dirs and log4j2 file lists are comma-separated: no test name in the path
	k := &kafkaServer{t: t, dir: dir, port: testkit.FreePort(t), logPath: filepath.Join(dir, "kafka.out")}
	cport := testkit.FreePort(t)
	k.props = filepath.Join(dir, "server.properties")
	k.log4j = filepath.Join(dir, "log4j2.properties")
	props := fmt.Sprintf(`process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:%[1]d,CONTROLLER://127.0.0.1:%[2]d
advertised.listeners=PLAINTEXT://127.0.0.1:%[1]d
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:%[2]d
log.dirs=%[3]s
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
`, k.port, cport, filepath.Join(dir, "data"))
	logCfg := fmt.Sprintf(`status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = %s
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%%d] %%p %%m (%%c)%%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
`, filepath.Join(dir, "server.log"))
	if err := os.WriteFile(k.props, []byte(props), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(k.log4j, []byte(logCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	format := exec.Command(filepath.Join(env.KafkaHome, "bin", "kafka-storage.sh"), "format",
		"-t", base64.RawURLEncoding.EncodeToString(id), "-c", k.props, "--standalone")
	format.Env = append(os.Environ(), "KAFKA_LOG4J_CONFIG="+k.log4j)
	if out, err := format.CombinedOutput(); err != nil {
		t.Fatalf("kafka-storage.sh format: %v\n%s", err, out)
	}
	k.start()
	t.Cleanup(func() {
		if k.proc != nil && k.proc.running() {
			if _, ended := k.proc.signal(syscall.SIGTERM, 30*time.Second); !ended {
				k.proc.killNow()
			}
		}
	})
	return k
}

// Addr returns the bootstrap address.
func (k *kafkaServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(k.port) }

// start (re)starts the broker on the same port and data and waits until it serves metadata.
func (k *kafkaServer) start() {
	t := k.t
	t.Helper()
	k.starts++
	cmd := exec.Command(filepath.Join(env.KafkaHome, "bin", "kafka-server-start.sh"), k.props)
	cmd.Env = append(os.Environ(), "KAFKA_HEAP_OPTS=-Xms128m -Xmx384m", "KAFKA_LOG4J_CONFIG="+k.log4j)
	k.proc = startReady(t, fmt.Sprintf("kafka #%d", k.starts), cmd, k.logPath, 150*time.Second,
		func() bool { return kafkaReady(k.Addr()) })
}

// stop stops the broker gracefully (SIGTERM) and returns the time it was asked to.
func (k *kafkaServer) stop() time.Time {
	at := time.Now()
	if _, ended := k.proc.signal(syscall.SIGTERM, 60*time.Second); !ended {
		k.proc.killNow()
	}
	return at
}

// kafkaReady reports whether the broker at addr answers a metadata request with a controller.
func kafkaReady(addr string) bool {
	conn, err := kafka.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Brokers(); err != nil {
		return false
	}
	_, err = conn.Controller()
	return err == nil
}

// topicName returns a Kafka topic name unique to the test and this run.
func topicName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '-'
	}, t.Name())
	return fmt.Sprintf("e2e-%s-%x", name, b)
}

// topicPartitions returns the partitions of topic on brokers, waiting up to 30 s for the topic to appear.
func topicPartitions(t *testing.T, brokers, topic string) []kafka.Partition {
	t.Helper()
	var parts []kafka.Partition
	var lastErr error
	ok := waitFor(30*time.Second, func() bool {
		conn, err := kafka.DialContext(context.Background(), "tcp", brokers)
		if err != nil {
			lastErr = err
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		parts, lastErr = conn.ReadPartitions(topic)
		return lastErr == nil && len(parts) > 0
	})
	if !ok {
		t.Fatalf("topic %s on %s: %v", topic, brokers, lastErr)
	}
	return parts
}
