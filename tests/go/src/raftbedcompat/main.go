// raftbedcompat drives etcd's own Go client (clientv3 and its concurrency package, as Debian's
// golang-etcd-server-dev ships them) against a cluster given by its endpoints, and exits
// non-zero naming the first thing that did not behave as on etcd:
//
//   - a contended Mutex: 4 sessions take it 5 times each, never two holders at once;
//   - a contended Election: 3 candidates, each leads in turn as the one before resigns, and
//     Observe sees every leader in order;
//   - STM transfers at Serializable and SerializableSnapshot isolation: 4 goroutines commit
//     all 60 transfers between 5 accounts and the sum is conserved;
//   - Watch with history, then resumed from the last revision + 1 through another member:
//     every event once, in order, nothing missing.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func connect(endpoints []string) *clientv3.Client {
	client, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		fail("connect %v: %v", endpoints, err)
	}
	return client
}

func mutex(endpoints []string) {
	var holders, taken int32
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			client := connect(endpoints)
			defer client.Close()
			session, err := concurrency.NewSession(client, concurrency.WithTTL(5))
			if err != nil {
				fail("mutex: session %d: %v", w, err)
			}
			defer session.Close()
			m := concurrency.NewMutex(session, "/compat/mutex")
			for i := 0; i < 5; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := m.Lock(ctx); err != nil {
					fail("mutex: worker %d lock %d: %v", w, i, err)
				}
				if n := atomic.AddInt32(&holders, 1); n != 1 {
					fail("mutex: %d holders at once", n)
				}
				time.Sleep(10 * time.Millisecond)
				atomic.AddInt32(&holders, -1)
				atomic.AddInt32(&taken, 1)
				if err := m.Unlock(ctx); err != nil {
					fail("mutex: worker %d unlock %d: %v", w, i, err)
				}
				cancel()
			}
		}(w)
	}
	wg.Wait()
	fmt.Printf("mutex: taken %d times, never by two at once\n", taken)
}

func election(endpoints []string) {
	observer := connect(endpoints)
	defer observer.Close()
	observerSession, err := concurrency.NewSession(observer)
	if err != nil {
		fail("election: observer session: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	observed := concurrency.NewElection(observerSession, "/compat/election").Observe(ctx)
	var seen []string
	next := func() string {
		select {
		case response, ok := <-observed:
			if !ok {
				fail("election: Observe closed after %v", seen)
			}
			value := string(response.Kvs[0].Value)
			seen = append(seen, value)
			return value
		case <-time.After(20 * time.Second):
			fail("election: Observe saw nothing more after %v", seen)
		}
		return ""
	}
	type candidate struct {
		session  *concurrency.Session
		election *concurrency.Election
		elected  chan error
	}
	var candidates []candidate
	for i := 0; i < 3; i++ {
		client := connect(endpoints)
		defer client.Close()
		session, err := concurrency.NewSession(client, concurrency.WithTTL(10))
		if err != nil {
			fail("election: session %d: %v", i, err)
		}
		e := concurrency.NewElection(session, "/compat/election")
		c := candidate{session, e, make(chan error, 1)}
		go func(i int) { c.elected <- e.Campaign(ctx, "candidate-"+strconv.Itoa(i)) }(i)
		if i == 0 {
			if err := <-c.elected; err != nil {
				fail("election: first campaign: %v", err)
			}
		}
		time.Sleep(300 * time.Millisecond)
		candidates = append(candidates, c)
	}
	for i, c := range candidates {
		if i > 0 {
			select {
			case err := <-c.elected:
				if err != nil {
					fail("election: candidate %d campaign: %v", i, err)
				}
			case <-time.After(20 * time.Second):
				fail("election: candidate %d never elected", i)
			}
		}
		for {
			if next() == "candidate-"+strconv.Itoa(i) {
				break
			}
		}
		for j := i + 1; j < len(candidates); j++ {
			select {
			case <-candidates[j].elected:
				fail("election: candidate %d elected while %d leads", j, i)
			default:
			}
		}
		if err := c.election.Resign(ctx); err != nil {
			fail("election: candidate %d resign: %v", i, err)
		}
	}
	fmt.Printf("election: leaders in turn, observed %s\n", strings.Join(seen, " "))
}

func stm(endpoints []string, isolation concurrency.Isolation, name string) {
	client := connect(endpoints)
	defer client.Close()
	accounts := 5
	for i := 0; i < accounts; i++ {
		if _, err := client.Put(context.Background(), fmt.Sprintf("/compat/%s/%d", name, i), "100"); err != nil {
			fail("stm %s: initial put: %v", name, err)
		}
	}
	var committed, retries int32
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := connect(endpoints)
			defer c.Close()
			for i := 0; i < 15; i++ {
				from := fmt.Sprintf("/compat/%s/%d", name, (w+i)%accounts)
				to := fmt.Sprintf("/compat/%s/%d", name, (w+i+1+w%2)%accounts)
				attempts := 0
				_, err := concurrency.NewSTM(c, func(s concurrency.STM) error {
					attempts++
					a, _ := strconv.Atoi(s.Get(from))
					b, _ := strconv.Atoi(s.Get(to))
					s.Put(from, strconv.Itoa(a-1))
					s.Put(to, strconv.Itoa(b+1))
					return nil
				}, concurrency.WithIsolation(isolation))
				if err != nil {
					fail("stm %s: worker %d transfer %d: %v", name, w, i, err)
				}
				atomic.AddInt32(&committed, 1)
				atomic.AddInt32(&retries, int32(attempts-1))
			}
		}(w)
	}
	wg.Wait()
	sum := 0
	response, err := client.Get(context.Background(), "/compat/"+name+"/", clientv3.WithPrefix())
	if err != nil {
		fail("stm %s: final read: %v", name, err)
	}
	for _, kv := range response.Kvs {
		n, _ := strconv.Atoi(string(kv.Value))
		sum += n
	}
	if committed != 60 || sum != 100*accounts {
		fail("stm %s: %d of 60 transfers committed, sum %d (want %d)", name, committed, sum, 100*accounts)
	}
	fmt.Printf("stm %s: 60 of 60 transfers committed (%d retries), sum %d conserved\n", name, retries, sum)
}

func watch(endpoints []string) {
	client := connect(endpoints[:1])
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	first, err := client.Put(ctx, "/compat/watch/0", "0")
	if err != nil {
		fail("watch: put: %v", err)
	}
	for i := 1; i < 20; i++ {
		if _, err := client.Put(ctx, "/compat/watch/"+strconv.Itoa(i%3), strconv.Itoa(i)); err != nil {
			fail("watch: put: %v", err)
		}
	}
	var values []string
	var last int64
	take := func(ch clientv3.WatchChan, count int) {
		for len(values) < count {
			select {
			case response, ok := <-ch:
				if !ok || response.Err() != nil {
					fail("watch: closed after %v: %v", values, response.Err())
				}
				for _, event := range response.Events {
					if event.Kv.ModRevision <= last {
						fail("watch: revision %d after %d", event.Kv.ModRevision, last)
					}
					last = event.Kv.ModRevision
					values = append(values, string(event.Kv.Value))
				}
			case <-time.After(20 * time.Second):
				fail("watch: stalled after %v", values)
			}
		}
	}
	watchCtx, stop := context.WithCancel(ctx)
	take(client.Watch(watchCtx, "/compat/watch/", clientv3.WithPrefix(), clientv3.WithRev(first.Header.Revision)), 20)
	stop()
	for i := 20; i < 30; i++ {
		if _, err := client.Put(ctx, "/compat/watch/"+strconv.Itoa(i%3), strconv.Itoa(i)); err != nil {
			fail("watch: put: %v", err)
		}
	}
	other := connect(endpoints[len(endpoints)-1:])
	defer other.Close()
	take(other.Watch(ctx, "/compat/watch/", clientv3.WithPrefix(), clientv3.WithRev(last+1)), 30)
	for i, v := range values {
		if v != strconv.Itoa(i) {
			fail("watch: event %d is %q: %v", i, v, values)
		}
	}
	fmt.Printf("watch: 20 events from history, 10 more resumed on another member, none missing or repeated\n")
}

func main() {
	if len(os.Args) != 2 {
		fail("usage: raftbedcompat host:port,host:port,...")
	}
	endpoints := strings.Split(os.Args[1], ",")
	mutex(endpoints)
	election(endpoints)
	stm(endpoints, concurrency.Serializable, "serializable")
	stm(endpoints, concurrency.SerializableSnapshot, "snapshot")
	watch(endpoints)
}
