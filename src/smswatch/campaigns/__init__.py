"""Campaigns: the messages of one send, seen as one thing.

A campaign is never one message (Lisoloo caps a send at 1,000 recipients; YeboLink makes one
message per recipient), so messages are grouped:

1. by an explicit tag (`smswatch campaign tag`), which wins over everything;
2. by the sender's metadata (YeboLink; keys `campaign`, `campaign_id`, `batch_id` by default);
3. by the run's campaign (`--campaign NAME`, or started from the TUI's palette): every message
   first seen while it lasts;
4. by the gateway's own grouping field (`MessageInfo.group`: Twilio's MessagingServiceSid,
   Vonage's client-ref);
5. otherwise by gateway and send burst: messages first seen close together in time.

The first four are decided when a message is first stored and kept in the store's
`campaigns` table, so they survive restarts and rebuilds; bursts are derived when read, from
when each message was first seen (store/queries/campaigns.py).
"""
