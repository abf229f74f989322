package publisher

import "github.com/tagstream/tagstream/poller"

// The publishers satisfy the poller's contract (the poller never imports this package; the check lives here).
var (
	_ poller.Publisher = (*Kafka)(nil)
	_ poller.Publisher = (*JetStream)(nil)
	_ poller.Publisher = (*NATS)(nil)
	_ poller.Publisher = (*File)(nil)
	_ poller.Publisher = Publisher(nil)

	_ Deliverer = (*Kafka)(nil)
	_ Deliverer = (*JetStream)(nil)
	_ Deliverer = (*NATS)(nil)
	_ Deliverer = (*File)(nil)
)
