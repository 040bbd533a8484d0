"""Publish rate through the admin API: THREADS keep-alive clients POST
/api/v1/publish for SECONDS into ROOMS rooms; prints publishes per second.

    python3 benches/admin_publish_rate.py PORT THREADS SECONDS ROOMS

The server must run with `--api-key k` and a rate limit that does not bind
(`--rate 1000000 --rate-burst 1000000`). Python's client is the bottleneck
for the in-memory store; the figure compares stores, not servers.
"""

import http.client, threading, time, sys, json
port=int(sys.argv[1]); threads=int(sys.argv[2]); secs=float(sys.argv[3]); rooms=int(sys.argv[4])
count=[0]*threads
def run(i):
    c=http.client.HTTPConnection('127.0.0.1',port)
    end=time.time()+secs; n=0
    body=json.dumps({"room":f"r{i%rooms}","event":"e","data":{"n":1}})
    while time.time()<end:
        c.request('POST','/api/v1/publish',body,{'authorization':'Bearer k','content-type':'application/json'})
        r=c.getresponse(); r.read(); assert r.status==200, r.status
        n+=1
    count[i]=n
ts=[threading.Thread(target=run,args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(count)/secs)
