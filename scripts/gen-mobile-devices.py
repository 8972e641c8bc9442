#!/usr/bin/env python3
"""Writes a large Exchange mobile-device inventory in the shape `Get-MobileDevice | Export-Csv`
produces, for Exchange connector sources and benchmarks.

    scripts/gen-mobile-devices.py 200000 > devices.csv
    scripts/gen-mobile-devices.py 200000 --changed 1000 --seed 1 > devices-changed.csv

--changed N gives the first N devices a later WhenChanged (and a new access state), so that a
delta sync against the second file sees exactly N changes.
"""
import argparse
import csv
import random
import sys
from datetime import datetime, timedelta, timezone

COLUMNS = ["DeviceId", "DeviceType", "DeviceModel", "DeviceOS", "FriendlyName", "UserDisplayName",
           "UserPrincipalName", "PrimarySmtpAddress", "DeviceAccessState", "DeviceAccessStateReason",
           "FirstSyncTime", "WhenChanged"]
KINDS = [("iPhone", "iPhone15,2", "iOS 17.1.2 21B101"), ("iPad", "iPad13,4", "iOS 17.0 21A329"),
         ("SAMSUNGSMG991B", "SM-G991B", "Android 14.0.0"), ("Android", "Pixel 8", "Android 15")]


def stamp(t):
    # As Export-Csv writes dates on an en-US machine: 11/22/2026 2:05:09 PM.
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02}:{t.second:02} {'PM' if t.hour >= 12 else 'AM'}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("count", type=int)
    parser.add_argument("--changed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    base = datetime(2026, 11, 1, tzinfo=timezone.utc)
    out = csv.writer(sys.stdout, quoting=csv.QUOTE_ALL, lineterminator="\n")
    sys.stdout.write("#TYPE Microsoft.Exchange.Data.Directory.SystemConfiguration.MobileDevice\n")
    out.writerow(COLUMNS)
    for i in range(args.count):
        kind, model, os_name = KINDS[rng.randrange(len(KINDS))]
        user = f"user{i:07d}@contoso.com"
        first = base + timedelta(minutes=rng.randrange(20000))
        changed = first + timedelta(minutes=rng.randrange(1000))
        state = "Allowed"
        if i < args.changed:
            changed = base + timedelta(days=40, seconds=i)
            state = "Blocked"
        out.writerow([f"DEV{i:010d}", kind, model, os_name, "", f"contoso.com/Users/User {i}", user, user,
                      state, "Global", stamp(first), stamp(changed)])


if __name__ == "__main__":
    main()
