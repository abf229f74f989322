// Command brokercheck supports scripts/brokers.sh: it picks free loopback ports and waits until a Kafka broker or a
// NATS JetStream server answers a real round trip (create a topic or stream, publish, get the acknowledgement), so
// that the test command never relies on a sleep.
//
// Usage:
//
//	brokercheck ports N                          print N free loopback TCP ports, one per line
//	brokercheck kafka -addr HOST:PORT [-timeout D] [-pid PID]
//	brokercheck nats  -url nats://HOST:PORT [-timeout D] [-pid PID]
//
// It exits 0 once the round trip succeeded, and 1 with the last error when the timeout expires or when the broker
// process given by -pid has exited (so that a broker that cannot start fails at once, not after the timeout).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
)

const usage = `usage:
  brokercheck ports N
  brokercheck kafka -addr HOST:PORT [-timeout 2m] [-pid PID]
  brokercheck nats  -url nats://HOST:PORT [-timeout 2m] [-pid PID]`

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "brokercheck:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "ports":
		if len(args) != 2 {
			return errors.New(usage)
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 1 || n > 64 {
			return fmt.Errorf("ports: want a count 1..64, got %q", args[1])
		}
		ports, err := freePorts(n)
		if err != nil {
			return err
		}
		for _, p := range ports {
			fmt.Println(p)
		}
		return nil
	case "kafka", "nats":
		fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
		addr := fs.String("addr", "", "Kafka bootstrap address host:port")
		url := fs.String("url", "", "NATS URL")
		timeout := fs.Duration("timeout", 2*time.Minute, "give up after this long")
		pid := fs.Int("pid", 0, "fail as soon as this broker process has exited")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if args[0] == "kafka" {
			if *addr == "" {
				return errors.New("kafka: -addr is required")
			}
			return waitFor(ctx, "kafka "+*addr, *pid, func(ctx context.Context) error { return checkKafka(ctx, *addr) })
		}
		if *url == "" {
			return errors.New("nats: -url is required")
		}
		return waitFor(ctx, "nats "+*url, *pid, func(ctx context.Context) error { return checkNATS(ctx, *url) })
	default:
		return errors.New(usage)
	}
}

// freePorts listens on n ephemeral loopback ports at once (so they are distinct), then releases them.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("ports: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// waitFor retries check until it succeeds, ctx ends or the process pid (if not 0) has exited, and returns the last
// error then.
func waitFor(ctx context.Context, what string, pid int, check func(context.Context) error) error {
	start := time.Now()
	var last error
	for attempt := 1; ; attempt++ {
		if pid > 0 && !alive(pid) {
			if last == nil {
				last = errors.New("no attempt succeeded")
			}
			return fmt.Errorf("%s: broker process %d exited after %s: %w", what, pid, time.Since(start).Round(time.Millisecond), last)
		}
		actx, cancel := context.WithTimeout(ctx, 15*time.Second)
		last = check(actx)
		cancel()
		if last == nil {
			fmt.Printf("brokercheck: %s ready after %s (%d attempts)\n", what, time.Since(start).Round(time.Millisecond), attempt)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w", what, time.Since(start).Round(time.Millisecond), last)
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

const checkName = "tagstream-brokercheck"

// checkKafka creates a one-partition topic, produces one record with acks=all and reads the metadata back.
func checkKafka(ctx context.Context, addr string) error {
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second}
	res, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: checkName, NumPartitions: 1, ReplicationFactor: 1,
	}}})
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	if err := res.Errors[checkName]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("create topic: %w", err)
	}
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        checkName,
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond,
		MaxAttempts:  1,
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("check"), Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))}); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{checkName}})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 1 {
		return fmt.Errorf("metadata: unexpected answer for %s: %+v", checkName, md.Topics)
	}
	return nil
}

// checkNATS creates a memory stream, publishes one message and waits for its JetStream acknowledgement.
func checkNATS(ctx context.Context, url string) error {
	nc, err := nats.Connect(url, nats.Name("tagstream-brokercheck"), nats.Timeout(5*time.Second), nats.NoReconnect())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		return fmt.Errorf("account info: %w", err)
	}
	stream := "TAGSTREAM_BROKERCHECK"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: stream, Subjects: []string{checkName}, Storage: jetstream.MemoryStorage, MaxMsgs: 10,
	}); err != nil {
		return fmt.Errorf("create stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), stream) }()
	if _, err := js.Publish(ctx, checkName, []byte("check")); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}
