package publisher

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tagstream/tagstream/internal/redact"
)

// ConnConfig configures a NATS connection for the JetStream and core NATS publishers. The zero value connects to
// nats://127.0.0.1:4222 without credentials. At most one of User/Password, Token, NKeySeedFile and CredsFile may
// be set.
type ConnConfig struct {
	// URLs are the servers to try; default nats://127.0.0.1:4222. Credentials in a URL are accepted but never
	// logged.
	URLs []string
	// Name is the connection name shown by the server; default "tagstream".
	Name string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// NKeySeedFile authenticates with the nkey seed in this file.
	NKeySeedFile string
	// CredsFile authenticates with a decentralised-auth credentials file (user JWT and nkey seed).
	CredsFile string
	// TLS configures TLS (CA, client certificate).
	TLS TLSConfig
	// ConnectTimeout bounds the initial dial of each server; default 5 s.
	ConnectTimeout time.Duration
	// ReconnectWait is the first reconnect delay; it doubles per failed attempt (with jitter) up to
	// MaxReconnectWait. Defaults 250 ms and 10 s. The connection reconnects forever.
	ReconnectWait, MaxReconnectWait time.Duration
	// ReconnectBufSize bounds the bytes buffered while reconnecting (publishes beyond it fail fast and are
	// retried by the publisher); default 8 MiB.
	ReconnectBufSize int
}

// validate checks the fields and resolves defaults.
func (c ConnConfig) withDefaults() (ConnConfig, error) {
	if len(c.URLs) == 0 {
		c.URLs = []string{nats.DefaultURL}
	}
	for i, u := range c.URLs {
		if strings.TrimSpace(u) == "" {
			return c, configError(fmt.Sprintf("URLs[%d]", i), "empty URL")
		}
	}
	if c.Name == "" {
		c.Name = "tagstream"
	}
	n := 0
	if c.User != "" || c.Password != "" {
		n++
		if c.User == "" {
			return c, configError("User", "a Password needs a User")
		}
	}
	for _, s := range []string{c.Token, c.NKeySeedFile, c.CredsFile} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return c, configError("User/Token/NKeySeedFile/CredsFile", "set at most one way to authenticate")
	}
	if c.ConnectTimeout < 0 || c.ReconnectWait < 0 || c.MaxReconnectWait < 0 || c.ReconnectBufSize < 0 {
		return c, configError("ConnectTimeout/ReconnectWait/MaxReconnectWait/ReconnectBufSize", "must not be negative")
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 250 * time.Millisecond
	}
	if c.MaxReconnectWait == 0 {
		c.MaxReconnectWait = 10 * time.Second
	}
	if c.MaxReconnectWait < c.ReconnectWait {
		return c, configError("MaxReconnectWait", "%v is below ReconnectWait %v", c.MaxReconnectWait, c.ReconnectWait)
	}
	if c.ReconnectBufSize == 0 {
		c.ReconnectBufSize = 8 << 20
	}
	return c, nil
}

// Options returns the nats.go options for c (credentials, TLS, reconnect forever with exponential backoff and
// jitter, handlers that log through logger without credentials).
func (c ConnConfig) Options(logger *slog.Logger) ([]nats.Option, error) {
	c, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.Timeout(c.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(c.ReconnectBufSize),
		nats.CustomReconnectDelay(reconnectDelay(c.ReconnectWait, c.MaxReconnectWait)),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if err == nil || nc.IsClosed() {
				return // a deliberate Close: nothing went wrong
			}
			logger.Warn("nats disconnected", "server", nc.ConnectedUrlRedacted(), "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			logger.Info("nats reconnected", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Warn("nats async error", "err", err)
		}),
	}
	switch {
	case c.User != "":
		opts = append(opts, nats.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, nats.Token(c.Token))
	case c.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(c.NKeySeedFile)
		if err != nil {
			return nil, configError("NKeySeedFile", "%v", err)
		}
		opts = append(opts, o)
	case c.CredsFile != "":
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	tlsCfg, err := c.TLS.build("TLS")
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, nats.Secure(tlsCfg))
	}
	return opts, nil
}

// reconnectDelay doubles the delay per attempt from first up to max, with full jitter on the upper half.
func reconnectDelay(first, maxWait time.Duration) nats.ReconnectDelayHandler {
	return func(attempts int) time.Duration {
		d := first
		for i := 1; i < attempts && d < maxWait; i++ {
			d *= 2
		}
		d = min(d, maxWait)
		return d/2 + rand.N(d/2+1)
	}
}

// Connect dials NATS as configured. It fails with ErrConfig for an invalid field or settings the server refused
// (credentials, certificates), and with ErrUnreachable when no server answers (refused, timed out, ctx ended
// first): a caller may retry that one. Errors never hold a password, a token or a URL's user info.
func Connect(ctx context.Context, cfg ConnConfig, logger *slog.Logger) (*nats.Conn, error) {
	opts, err := cfg.Options(logger)
	if err != nil {
		return nil, err
	}
	cfg, _ = cfg.withDefaults()
	type result struct {
		nc  *nats.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
		ch <- result{nc, err}
	}()
	r := cfg.redactor()
	urls := make([]string, len(cfg.URLs))
	for i, u := range cfg.URLs {
		urls[i] = r.URL(u)
	}
	select {
	case res := <-ch:
		if res.err != nil {
			return nil, classifyStart(fmt.Errorf("publisher: connect to nats %s: %w", strings.Join(urls, ","), r.Error(res.err)))
		}
		return res.nc, nil
	case <-ctx.Done():
		go func() {
			if res := <-ch; res.nc != nil {
				res.nc.Close()
			}
		}()
		return nil, classifyStart(fmt.Errorf("publisher: connect to nats %s: %w", strings.Join(urls, ","), ctx.Err()))
	}
}

// redactor knows the secrets of c: the password, the token and the user info of every URL.
func (c ConnConfig) redactor() *redact.Redactor {
	secrets := []string{c.Password, c.Token}
	for _, u := range c.URLs {
		if pu, err := url.Parse(u); err == nil && pu.User != nil {
			secrets = append(secrets, pu.User.String())
			if p, ok := pu.User.Password(); ok {
				secrets = append(secrets, p)
			}
		}
	}
	return redact.New(secrets...)
}

// connReady reports a closed connection (ErrClosed) or one that is not connected now (ErrUnavailable, naming
// its status: disconnected, reconnecting...).
func connReady(nc *nats.Conn) error {
	switch {
	case nc.IsClosed():
		return fmt.Errorf("publisher: nats connection: %w", ErrClosed)
	case !nc.IsConnected():
		return fmt.Errorf("publisher: nats connection %s: %w", strings.ToLower(nc.Status().String()), ErrUnavailable)
	}
	return nil
}
