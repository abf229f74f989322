//go:build integration

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// brokerEnv holds the addresses scripts/test.sh (or scripts/brokers.sh up) exports.
type brokerEnv struct {
	KafkaBrokers  string // TAGSTREAM_KAFKA_BROKERS: the shared Kafka, one topic per test
	NATSURL       string // TAGSTREAM_NATS_URL: the shared nats-server (tests start their own; checked for presence)
	NATSServerBin string // TAGSTREAM_NATS_SERVER_BIN: the nats-server binary each JetStream test starts
	KafkaHome     string // TAGSTREAM_KAFKA_HOME: the Kafka distribution (bin/, libs/) for a private broker
}

var (
	env     brokerEnv
	binPath string // the built tagstream binary
	raceBin bool   // binPath was built with -race
)

// requiredEnv lists the variables the package needs (scripts/brokers.sh up writes them to its env file).
var requiredEnv = []struct {
	name string
	dst  *string
}{
	{"TAGSTREAM_KAFKA_BROKERS", &env.KafkaBrokers},
	{"TAGSTREAM_NATS_URL", &env.NATSURL},
	{"TAGSTREAM_NATS_SERVER_BIN", &env.NATSServerBin},
	{"TAGSTREAM_KAFKA_HOME", &env.KafkaHome},
}

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	for _, v := range requiredEnv {
		*v.dst = os.Getenv(v.name)
		if *v.dst == "" {
			fmt.Fprintf(os.Stderr, "FAIL e2e: %s is not set: the end-to-end tests need the real brokers (source the env file of scripts/brokers.sh up, or run scripts/test.sh)\n", v.name)
			return 1
		}
	}
	if fi, err := os.Stat(env.NATSServerBin); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		fmt.Fprintf(os.Stderr, "FAIL e2e: TAGSTREAM_NATS_SERVER_BIN=%s is not an executable file\n", env.NATSServerBin)
		return 1
	}
	for _, f := range []string{"bin/kafka-server-start.sh", "bin/kafka-storage.sh"} {
		if _, err := os.Stat(filepath.Join(env.KafkaHome, f)); err != nil {
			fmt.Fprintf(os.Stderr, "FAIL e2e: TAGSTREAM_KAFKA_HOME=%s has no %s\n", env.KafkaHome, f)
			return 1
		}
	}

	// The binary is cmd/tagstream under another name: a name-based kill of "tagstream" processes by some other
	// session on this shared machine (seen once: two runs SIGTERMed in the same millisecond) must not end it.
	dir, err := os.MkdirTemp("", "e2e-bin-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binPath = filepath.Join(dir, "ts-under-test")
	raceBin = os.Getenv("TAGSTREAM_E2E_RACE") != "0"
	args := []string{"build", "-o", binPath}
	if raceBin {
		args = append(args, "-race")
	}
	args = append(args, "github.com/tagstream/tagstream/cmd/tagstream")
	start := time.Now()
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "FAIL e2e: go %v: %v\n", args, err)
		return 1
	}
	fmt.Printf("e2e: built tagstream (race=%v) in %s\n", raceBin, time.Since(start).Round(time.Millisecond))
	return m.Run()
}
