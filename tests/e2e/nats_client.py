"""An independent NATS JetStream client for the NATS tests (nats-py).

    nats_client.py URL create STREAM SUBJECT...     create a stream taking these subjects
    nats_client.py URL publish FILE                 publish each line of FILE, `subject<TAB>payload`
    nats_client.py URL read STREAM                  print every message's payload, one per line
    nats_client.py URL count STREAM                 print the stream's message count
"""
import asyncio
import sys

import nats
from nats.js.api import StreamConfig


async def main(url, command, args):
    nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=2)
    js = nc.jetstream()
    if command == "create":
        await js.add_stream(StreamConfig(name=args[0], subjects=args[1:]))
    elif command == "publish":
        with open(args[0], "rb") as f:
            lines = f.read().split(b"\n")
        pending = []
        for line in lines:
            if not line:
                continue
            subject, payload = line.split(b"\t", 1)
            pending.append(js.publish(subject.decode(), payload))
            if len(pending) == 256:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    elif command == "read":
        info = await js.stream_info(args[0])
        last = info.state.last_seq
        out = sys.stdout.buffer
        if info.state.messages:
            # An ordered push consumer over the whole stream, read up to its last message.
            consumer = await js.subscribe(">", stream=args[0], ordered_consumer=True)
            read = 0
            while read < info.state.messages:
                msg = await consumer.next_msg(timeout=10)
                out.write(msg.data + b"\n")
                read += 1
                if msg.metadata.sequence.stream >= last:
                    break
            await consumer.unsubscribe()
    elif command == "count":
        info = await js.stream_info(args[0])
        print(info.state.messages)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
