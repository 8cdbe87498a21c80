"""Drive the official Python Blynk library (PyPI `blynk-library-python` 0.2.0, BlynkLib.py)
against a pinhouse server over plain TCP (the only transport it has).

Usage: blynk_lib_client.py HOST PORT TOKEN MODE
  MODE "full": log in (heartbeat 2 s), write V1=23.5, set V1's label property, sync V1 and
               check the server sends 23.5 back, reconnect and write V1=24.5, then stay
               silent (no pings) and check the server closes the session after its heartbeat
               timeout. Prints one line per step.
  MODE "badtoken": log in with the token given and expect the refusal.
Exit status 0 means every step behaved as expected. The library prints a banner on import;
results are the lines starting with "step:".
"""
import socket
import sys
import time

import BlynkLib

host, port, token, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
events = []


def step(text):
    print("step:", text, flush=True)


def log(*args):
    print(*args, file=sys.stderr)


def run_until(blynk, done, seconds):
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        blynk.run()
    return done()


blynk = BlynkLib.Blynk(token, server=host, port=port, heartbeat=2, log=log)
blynk.on("connected", lambda *a, **k: events.append("connected"))
blynk.on("disconnected", lambda *a, **k: events.append("disconnected"))

if mode == "badtoken":
    ok = run_until(blynk, lambda: "disconnected" in events, 5)
    step("refused" if ok and "connected" not in events else "not refused: %s" % events)
    sys.exit(0 if ok and "connected" not in events else 1)

if not run_until(blynk, lambda: "connected" in events, 5):
    step("could not log in: %s" % events)
    sys.exit(2)
step("logged in")

synced = []
blynk.on("V1", lambda values: synced.append(values))
blynk.virtual_write(1, 23.5)
blynk.set_property(1, "label", "Boiler")
blynk.sync_virtual(1)
if not run_until(blynk, lambda: synced, 5):
    step("no sync answer")
    sys.exit(3)
step("synced %s" % synced[0])
if synced[0] != ["23.5"]:
    sys.exit(3)

# Reconnect: a new connection with the same token, as after a network drop.
blynk.conn.close()
blynk.disconnect()
events.clear()
blynk.connect()
if not run_until(blynk, lambda: "connected" in events, 5):
    step("could not log in again: %s" % events)
    sys.exit(4)
blynk.virtual_write(1, 24.5)
run_until(blynk, lambda: False, 0.5)
step("reconnected")

# Heartbeat timeout: say nothing (no pings) and wait for the server to close the session.
silent_since = time.time()
blynk.conn.settimeout(1.0)
closed = False
while time.time() - silent_since < 20:
    try:
        data = blynk.conn.recv(1024)
    except socket.timeout:
        continue
    except OSError:
        closed = True
        break
    if not data:
        closed = True
        break
if not closed:
    step("server kept a silent session open for 20 s")
    sys.exit(5)
step("server closed the silent session after %.1f s" % (time.time() - silent_since))
