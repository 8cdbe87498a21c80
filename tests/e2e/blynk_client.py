"""Drive the real Python Blynk client (blynklib 0.2.6) against a pinhouse server.

Usage: blynk_client.py HOST PORT TOKEN MODE [CA_FILE]
  MODE "write": log in, write V1=23.5 and V2="hello", sync V1 and print what the
                server sends back, then disconnect.
  MODE "badtoken": log in and expect the connection to be refused.
  MODE "console": log in, write a V1 series (20.0 … 22.5), V2="hello console" and
                V4=location, print "ready", then wait up to 120 s for the server to
                write V3 (the console's switch) and print it; exit 0 when V3 is ["1"].
With CA_FILE the connection uses TLS and trusts that certificate authority.
Exit status 0 means every step behaved as expected.
"""
import sys
import time

import blynklib

host, port, token, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ca_file = sys.argv[5] if len(sys.argv) > 5 else None
assert blynklib.__version__ == "0.2.6", blynklib.__version__

blynk = blynklib.Blynk(token, server=host, port=port, ssl_cert=ca_file, heartbeat=10,
                       log=lambda *a: print(*a, file=sys.stderr))

if mode == "badtoken":
    ok = blynk.connect(timeout=3)
    print("connected" if ok else "refused")
    sys.exit(0 if not ok else 1)

if mode == "console":
    relay = []

    @blynk.handle_event("write V3")
    def on_v3(pin, values):
        relay.append(values)

    if not blynk.connect(timeout=10):
        print("could not connect", file=sys.stderr)
        sys.exit(2)
    for value in (20.0, 20.5, 21.0, 21.5, 22.0, 22.5):
        blynk.virtual_write(1, value)
        blynk.run()
        time.sleep(0.15)
    blynk.virtual_write(2, "hello console")
    blynk.virtual_write(4, 52.3702, 4.8952)
    blynk.run()
    print("ready", flush=True)
    deadline = time.time() + 120
    while not relay and time.time() < deadline:
        blynk.run()
    print("V3", relay, flush=True)
    blynk.disconnect()
    sys.exit(0 if relay == [["1"]] else 4)

synced = []


@blynk.handle_event("write V1")
def on_v1(pin, values):
    synced.append(values)


if not blynk.connect(timeout=10):
    print("could not connect", file=sys.stderr)
    sys.exit(2)
blynk.virtual_write(1, 23.5)
time.sleep(0.1)
blynk.virtual_write(2, "hello")
time.sleep(0.3)
blynk.virtual_sync(1)
deadline = time.time() + 5
while not synced and time.time() < deadline:
    blynk.run()
print("synced", synced)
blynk.disconnect()
sys.exit(0 if synced == [["23.5"]] else 3)
