"""`make demo`: start local Azure (Azurite + the ARM emulator, each a child process on free
127.0.0.1 ports), seed a fleet (one subscription: 30 standalone VMs, a Flexible scale set of 3, a Uniform
one of 2), print an inventory summary from a Resource Graph query, then run auto-protect: VMs are created
in the emulator → its Event Grid event reaches the function app (run by the local Functions host) → a job
on the queue → the VM is protected in its region's Recovery Services vault; the protect sweep enrols the
seeded VMs no event named. Then retention over a VM's older sets, scheduled protection, a restore, a
critical VM replicated by Site Recovery and drilled, and the operator's view, ending with the report's
verdict line, its path and what to try. The demo prints the timeline; every count it prints is one the
report it writes agrees with.

Everything stops when the demo ends: no stray processes."""

from __future__ import annotations

import sys
import time
from collections import Counter

from devtools.fleet import VMKEEPER_SCALE_SETS, VMKEEPER_TAG_SETS

FLEET = {"subscriptions": 1, "resource_groups": 4, "vms": 30, "data_disks": [1, 4],
         "regions": ["westeurope", "northeurope", "eastus", "westus2"], "seed": 2026, "tag_sets": VMKEEPER_TAG_SETS,
         "scale_sets": VMKEEPER_SCALE_SETS}


def main() -> int:
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.mgmt.resourcegraph.models import QueryRequest
    from azure.storage.queue import QueueServiceClient

    from devtools.processes import azurite, emulator_process
    from emulator.testing import LocalAzure

    started = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - started:6.2f}s] {message}", flush=True)

    with azurite() as storage, emulator_process() as info:
        say(f"Azurite on 127.0.0.1 (queue :{storage.queue_port}, table :{storage.table_port}), telemetry off")
        say(f"ARM emulator at {info['base_url']} (CA {info['ca_path']})")
        queues = QueueServiceClient.from_connection_string(storage.connection_string)
        for name in ("vmkeeper-jobs", "vmkeeper-jobs-poison"):
            queues.create_queue(name)
        say("queues ready: " + ", ".join(q.name for q in queues.list_queues()))

        az = LocalAzure(info["base_url"], info["ca_path"])
        fleet = az.seed(**FLEET)
        sets = {s["orchestrationMode"]: len(s["instances"]) for s in fleet["scaleSets"]}
        standalone = fleet["vms"] - sets.get("Flexible", 0)
        say(f"seeded {fleet['vms'] + sets.get('Uniform', 0)} VMs in subscription {fleet['subscriptions'][0]}: "
            f"{standalone} standalone, a Flexible scale set of {sets.get('Flexible', 0)} (VMs like any other) and a "
            f"Uniform scale set of {sets.get('Uniform', 0)} (instances no kind of point covers); {fleet['disks']} disks")
        graph = az.client(ResourceGraphClient)
        query = ("Resources | where type =~ 'microsoft.compute/virtualmachines' "
                 "| project id, subscriptionId, location, policy = tostring(tags['vmkeeper-policy']), "
                 "optout = tostring(tags['vmkeeper-optout']), disks = array_length(properties.storageProfile.dataDisks)")
        rows, token = [], None
        while True:
            page = graph.resources(QueryRequest(subscriptions=fleet["subscriptions"], query=query,
                                                options={"$skipToken": token} if token else None))
            rows += page.data
            token = page.skip_token
            if not token:
                break
        say(f"Resource Graph lists {len(rows)} virtual machines (a Uniform set's instances are not among them)")

        print("\nInventory by region and vmkeeper policy")
        table = Counter((r["location"], "opt-out" if r["optout"] == "true" else (r["policy"] or "(default)")) for r in rows)
        policies = sorted({p for _, p in table})
        print(f"  {'region':<14}" + "".join(f"{p:>11}" for p in policies) + f"{'total':>8}")
        for region in sorted({loc for loc, _ in table}):
            counts = [table[(region, p)] for p in policies]
            print(f"  {region:<14}" + "".join(f"{c:>11}" for c in counts) + f"{sum(counts):>8}")
        disks = Counter(r["disks"] for r in rows)
        print("\nData disks per VM: " + ", ".join(f"{n} disk{'s' if n != 1 else ''}: {disks[n]} VMs" for n in sorted(disks)))
        calls = az.calls()
        print(f"The inventory took {len(calls)} ARM call ({Counter(c['operation'] for c in calls).most_common(1)[0][0]})")
        print("\n== Auto-protect: VM creation event → Azure Backup")
        autoprotect_demo(az, storage, fleet["subscriptions"][0], sum(1 for r in rows if r["optout"] != "true"), say)

        print("\n== Retention: a gold VM's older snapshot sets; the clock moves on; what is kept, marked and deleted, and why")
        retention_demo(az, storage, fleet["subscriptions"][0], say)

        print("\n== Scheduled protection: plan a slot, fan out, snapshots and restore points appear")
        scheduled_demo(az, storage, fleet["subscriptions"], say)

        print("\n== On-demand restore: a VM's recovery points, its newest snapshot set into a new VM")
        restore_demo(az, storage, fleet["subscriptions"][0], say)


        print("\n== Site Recovery: a critical VM's creation event → replicated to another region → a replica drill")
        site_recovery_demo(az, storage, fleet["subscriptions"][0], say)

        print("\n== The operator's view: RPO compliance, alerts to an Event Grid topic, the report page")
        operator_demo(az, storage, fleet["subscriptions"], say)
    say("local Azure stopped")
    return 0


def autoprotect_demo(az, storage, sub: str, seeded: int, say) -> None:
    """``seeded``: how many of the seeded VMs Azure Backup should protect (the protect sweep enrols them)."""
    import importlib
    import json
    import os

    from azure.data.tables import TableClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.resources.models import GenericResource

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from emulator.testing import StaticCredential
    from shared import wiring
    from shared.azure.ledger import Ledger

    az.settings(lro={"default_seconds": 0.2})  # Azure Backup's operations take a fifth of a second here
    resources = az.client(ResourceManagementClient, sub)
    vaults = {}
    for region in ("westeurope", "northeurope", "eastus", "westus2"):
        vault_id = f"/subscriptions/{sub}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/vault-{region}"
        resources.resource_groups.create_or_update("rg-backup", {"location": "westeurope"})
        resources.resources.begin_create_or_update_by_id(vault_id, GenericResource(
            location=region, sku={"name": "RS0", "tier": "Standard"}, properties={}), api_version="2025-02-01").result()
        vaults[region] = vault_id
    say(f"Recovery Services vaults in {', '.join(vaults)}")
    os.environ.update({
        "AzureWebJobsStorage": storage.connection_string, "VMKEEPER_VAULTS": json.dumps(vaults),
        "VMKEEPER_POLICY_FILE": write_policies(),  # each policy's backup_policy: the Azure Backup policy its VMs get
        "VMKEEPER_PROTECT_QUEUE": "vmkeeper-protect", "VMKEEPER_PROTECT_TABLE": "vmkeeperprotection",
        "VMKEEPER_JOBS_QUEUE": "vmkeeper-jobs", "VMKEEPER_RESTORE_QUEUE": "vmkeeper-restores",
        # Every queue a deployment has (infra sets them all), so each worker is indexed from the start.
        "VMKEEPER_DRILL_QUEUE": "vmkeeper-drills", "VMKEEPER_REPLICATION_QUEUE": "vmkeeper-replication",
        "VMKEEPER_FAILOVER_QUEUE": "vmkeeper-failovers",
        "VMKEEPER_SUBSCRIPTIONS": sub, "VMKEEPER_PROTECT_SCHEDULE": "0 0 * * * *",  # the protect sweep's fleet and timer
        "VMKEEPER_BACKUP_NOW": "true",  # each VM's first vault point now, not at its Azure Backup policy's first run
        "VMKEEPER_PROTECT_RETRY_SECONDS": "1", "VMKEEPER_ARM_ENDPOINT": az.base_url, "VMKEEPER_ARM_CA_BUNDLE": az.ca_path,
    })
    wiring.use(wiring.Wiring(credential=StaticCredential()))  # local only: the emulator takes any bearer token
    host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
    host.ensure_queues()
    events = az.admin("POST", "eventSubscriptions", {"endpoint": host.serve_event_grid("vm_events"), "subscriptionId": sub})
    say("function app running: Event Grid → vm_events → queue 'vmkeeper-protect' → protect_worker")
    host.start()
    compute = az.client(ComputeManagementClient, sub)
    rg = next(g.name for g in resources.resource_groups.list() if g.location == "westeurope" and g.name != "rg-backup")
    subnet = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet-westeurope/subnets/default"
    wanted = {"app-gold": {"vmkeeper-policy": "gold"}, "app-default": {}, "lab-optout": {"vmkeeper-optout": "true"}}
    for name, tags in wanted.items():
        nic = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}-nic"
        resources.resources.begin_create_or_update_by_id(nic, GenericResource(location="westeurope", properties={
            "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": subnet}}}]}), api_version="2024-05-01").result()
        compute.virtual_machines.begin_create_or_update(rg, name, {
            "location": "westeurope", "tags": tags, "properties": {
                "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
                "storageProfile": {"osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}}},
                "networkProfile": {"networkInterfaces": [{"id": nic}]}}}, polling=False)
        say(f"VM {name} created (PUT accepted) with tags {tags or '{}'}")
    ledger = Ledger(TableClient.from_connection_string(storage.connection_string, "vmkeeperprotection"))
    deadline = time.monotonic() + 60
    seen: set[str] = set()
    while time.monotonic() < deadline and len(seen) < len(wanted):
        for row in ledger.vms():
            name = row["vmId"].rsplit("/", 1)[-1]
            if name in wanted and name not in seen:
                seen.add(name)
                detail = json.loads(row["detail"])
                chosen = " → ".join(p for p in (detail.get("vmkeeper_policy"), detail.get("policy")) if p)
                say(f"VM {name}: {row['outcome']} {chosen}".rstrip())
        time.sleep(0.2)
    # The VMs that were there before vmkeeper: no creation event names them; the protect sweep (a timer) finds them.
    host.fire_timer("protect_sweep")
    say(f"protect_sweep: a protection job queued for each seeded VM Azure Backup should protect ({seeded})")
    deadline, swept = time.monotonic() + 120, 0
    while time.monotonic() < deadline and swept < seeded:
        time.sleep(0.3)
        swept = sum(1 for r in ledger.vms() if r["outcome"] == "protected" and r["vmId"].rsplit("/", 1)[-1] not in wanted)
    say(f"protect_sweep's jobs done: {swept} seeded VMs enrolled, each with its first vault recovery point; "
        "the opted-out ones left alone")
    az.admin("DELETE", f"eventSubscriptions/{events['id']}")  # the host stops: its events would wait on a dead endpoint
    host.close()
    steps = Counter(i["function"] for i in host.invocations)
    say(f"function invocations: {dict(steps)}; failed: {sum(1 for i in host.invocations if not i['ok'])} (here every "
        "write in the subscription reaches vm_events; a deployment's event subscription passes only VM writes)")


POLICIES = {"version": 1, "default": "bronze", "policies": {
    "gold": {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"},
             "restore_point": {"consistency": "CrashConsistent"}, "retention": {"keep_last": 3, "deferral": "PT1M"},
             "backup_policy": "EnhancedPolicy"},
    "silver": {"schedule": {"every_hours": 12}, "snapshots": {"luns": "all", "include_os_disk": False},
               "retention": {"keep_last": 4}, "backup_policy": "DefaultPolicy"},
    "bronze": {"schedule": {"daily_at": "02:30", "time_zone": "Europe/Amsterdam"}, "snapshots": {"luns": [0]},
               "retention": {"keep_last": 7}, "backup_policy": "DefaultPolicy"},
}}


def write_policies() -> str:
    """The policy document (POLICIES) in a file of its own: VMKEEPER_POLICY_FILE for both parts of the demo."""
    import json
    import os
    import tempfile

    policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-demo-"), "policies.json")
    with open(policy_file, "w", encoding="utf-8") as fh:
        json.dump(POLICIES, fh)
    return policy_file


def scheduled_demo(az, storage, subs: list[str], say) -> None:
    import importlib
    import os

    from azure.mgmt.compute import ComputeManagementClient

    import function_app
    from devtools.functions_host import LocalFunctionsHost

    os.environ.update({"VMKEEPER_SUBSCRIPTIONS": ",".join(subs), "VMKEEPER_POLICY_FILE": write_policies(),
                       "VMKEEPER_SCHEDULE": "0 */15 * * * *", "VMKEEPER_WRITES_PER_SECOND": "100"})
    az.settings(lro={"default_seconds": 0.2})
    host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
    host.ensure_queues()

    def taken() -> Counter:
        counts: Counter = Counter()
        for sub in subs:
            compute = az.client(ComputeManagementClient, sub)
            for snap in compute.snapshots.list():
                if snap.tags.get("vmkeeper-slot"):
                    counts[(snap.tags["vmkeeper-policy"], "snapshots")] += 1
                    counts[(snap.tags["vmkeeper-policy"], "sets:" + snap.tags["vmkeeper-set"])] = 1
            for rpc in compute.restore_point_collections.list_all():
                full = compute.restore_point_collections.get(rpc.id.split("/")[4], rpc.name, expand="restorePoints")
                counts[(rpc.tags.get("vmkeeper-policy", "?"), "restore points")] += len(full.restore_points or [])
        return counts

    before = taken()  # retention's older sets above are not this slot's
    host.fire_timer("plan_slot")
    say("plan_slot: jobs planned, each one's writes promised by the budget, packed a few VMs to a message")
    host.run_until_idle(timeout=300)
    after = taken()
    first = Counter({k: n - before[k] for k, n in after.items() if k[1].startswith("sets:") and k not in before
                     or not k[1].startswith("sets:") and n - before[k]})
    done = sum(1 for i in host.invocations if i["function"] == "protection_worker" and i["ok"])
    say(f"protection_worker: {done} invocations (each takes or checks the jobs of a message)")
    print(f"  {'policy':<8}{'VM sets':>9}{'snapshots':>11}{'restore points':>16}")
    for policy in ("gold", "silver", "bronze"):
        sets = sum(1 for (p, k) in first if p == policy and k.startswith("sets:"))
        print(f"  {policy:<8}{sets:>9}{first[(policy, 'snapshots')]:>11}{first[(policy, 'restore points')]:>16}")
    host.fire_timer("plan_slot")
    host.run_until_idle(timeout=120)
    again = taken()
    say("the same slot planned again: " + ("nothing new was created" if again == after else f"CHANGED: {again - after}"))
    host.close()


def retention_demo(az, storage, sub: str, say) -> None:
    """The app's retention pass (as its timer runs it: the policy document's rules, the fleet's ledger, alerts) over
    a gold VM given older snapshot sets, one under hold; the clock moved on a day between the passes."""
    from datetime import datetime, timedelta

    from azure.mgmt.compute import ComputeManagementClient

    from emulator.testing import StaticCredential
    from shared import tags as T
    from shared import wiring
    from shared.names import set_id, snapshot_name
    from shared.retention.engine import plan_summary
    from shared.schedule.planner import DiskRef

    compute = az.client(ComputeManagementClient, sub)
    az.settings(lro={"default_seconds": 0.2})
    gold = [v for v in compute.virtual_machines.list_all() if (v.tags or {}).get("vmkeeper-policy") == "gold"
            and v.storage_profile.data_disks]
    vm = min(gold, key=lambda v: (len(v.storage_profile.data_disks), v.name))  # the fewest disks: the shortest story
    rg = vm.id.split("/")[4]
    # A set's time is when its snapshots were made (retention reads properties.timeCreated): made oldest first here,
    # slotted on the days before today's scheduled slot (the next section takes that one).
    newest = datetime.fromisoformat(az.admin("GET", "clock")["now"]).replace(minute=0, second=0, microsecond=0)
    disks = [DiskRef(vm.storage_profile.os_disk.managed_disk.id, "", None)] + [
        DiskRef(d.managed_disk.id, "", d.lun) for d in vm.storage_profile.data_disks]
    days, held, pollers = 6, None, []
    for back in range(days, 0, -1):  # a set a day, named and tagged as the scheduler names and tags them
        slot = newest - timedelta(days=back)
        for disk in disks:
            name = snapshot_name(vm.name, disk, slot)
            held = held or name
            pollers.append(compute.snapshots.begin_create_or_update(rg, name, {
                "location": vm.location, "tags": {
                    T.MANAGED_BY: T.MANAGED_BY_VALUE, T.VM: vm.id.lower(), T.VM_INSTANCE: vm.vm_id.lower(),
                    T.ARTIFACT_POLICY: "gold",
                    T.SLOT: slot.isoformat(), T.SET: set_id(vm.id.lower(), slot), T.SET_SIZE: str(len(disks)),
                    T.LUN: str(disk.lun), **({T.HOLD: "audit-2026"} if name == held else {})},
                "properties": {"incremental": True, "creationData": {"createOption": "Copy", "sourceResourceId": disk.id}}}))
    for poller in pollers:  # made one after another (oldest first), waited for together
        poller.result()
    oldest = newest - timedelta(days=days)
    keep = POLICIES["policies"]["gold"]["retention"]["keep_last"]
    say(f"{vm.name} (policy gold: keep the last {keep} sets; a set marked is deleted a minute later, the demo's "
        f"deferral: 24 h unless a policy says) has {days} snapshot sets of {len(disks)} disks, one a day "
        f"{oldest:%m-%d} to {newest - timedelta(days=1):%m-%d}; one snapshot of {oldest:%m-%d} under hold 'audit-2026'")
    retention = wiring.use(wiring.Wiring(credential=StaticCredential())).retention  # as the retention timer's
    deleted = 0
    for label, advance in (("first pass", 0), ("second pass, past the deferral", 61)):
        az.advance(advance)
        now = datetime.fromisoformat(az.admin("GET", "clock")["now"])
        decisions, applied = retention.run(now)
        deleted += applied.deleted
        say(f"retention {label}: marked {applied.marked}, deleted {applied.deleted}, kept {applied.kept}, "
            f"skipped {applied.skipped} (snapshots: all {len(decisions)} vmkeeper has made so far; by rule:)")
        for action, rules in plan_summary(decisions).items():
            for rule, count in sorted(rules.items()):
                if count:
                    print(f"    {action:<7} {rule:<20} {count}")
    time.sleep(0.5)  # deletes are long-running: let the accepted ones finish
    left = sorted({s.tags[T.SLOT][:10] for s in compute.snapshots.list_by_resource_group(rg)
                   if s.tags.get(T.VM) == vm.id.lower() and s.tags.get(T.SLOT)})
    say(f"{vm.name}'s snapshot sets left: {', '.join(left)} ({deleted} snapshots deleted, {deleted // len(disks)} sets; "
        "each deletion in the ledger and alerted)")


def restore_demo(az, storage, sub: str, say) -> None:
    """Through the restore API as an operator calls it: the function key, and the caller App Service
    authentication would pass (X-MS-CLIENT-PRINCIPAL with the app role Restore.Operator)."""
    import importlib
    import json
    import os

    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from shared.access import OPERATOR, encode_principal

    compute = az.client(ComputeManagementClient, sub)
    sets = {}
    for snap in compute.snapshots.list():
        if snap.tags.get("vmkeeper-set") and "vmkeeper-copy-of" not in snap.tags:
            sets.setdefault(snap.tags["vmkeeper-vm"], set()).add(snap.tags.get("vmkeeper-lun"))
    vm_id = next(vm for vm, luns in sorted(sets.items()) if "None" in luns and len(luns) > 1)  # OS disk and data disks
    group, name = vm_id.split("/")[4], vm_id.split("/")[-1]
    vm = compute.virtual_machines.get(group, name)
    az.client(ResourceManagementClient, sub).resource_groups.create_or_update("rg-restore", {"location": vm.location})
    # Where restores may write: the group they create in, and the group whose subnet the new NIC joins.
    os.environ.update({"VMKEEPER_RESTORE_SCOPES": f"/subscriptions/{sub}/resourceGroups/rg-restore,"
                                                  f"/subscriptions/{sub}/resourceGroups/{group}",
                       "VMKEEPER_RESTORE_TABLE": "vmkeeperrestores"})
    az.settings(lro={"default_seconds": 1.0})
    host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
    host.ensure_queues()
    headers = {"x-functions-key": host.function_key,
               "X-MS-CLIENT-PRINCIPAL": encode_principal("00000000-0000-0000-0000-0000000000aa", [OPERATOR],
                                                         name="oncall@example.com")}
    listed = host.http("GET", f"/api/vms/{sub}/{vm.id.split('/')[4]}/{vm.name}/recovery-points", headers=headers)
    say(f"GET /api/vms/…/{vm.name}/recovery-points → {listed.status}: {len(listed.json()['value'])} recovery points")
    print(f"  {'time':<22}{'kind':<15}{'region':<13}{'consistency':<17}{'disks':>6}  complete")
    for p in listed.json()["value"]:
        print(f"  {p['time'][:19]:<22}{p['kind']:<15}{p['region']:<13}{p['consistency']:<17}{len(p['disks']):>6}  "
              f"{'yes' if p['complete'] else 'no: ' + (p['note'] or '')}")
    newest = next(p for p in listed.json()["value"] if p["kind"] == "snapshot_set" and p["complete"] and not p["copy"])
    subnet = vm.network_profile.network_interfaces[0].id  # the source NIC's subnet
    from azure.mgmt.network import NetworkManagementClient

    nic = az.client(NetworkManagementClient, sub).network_interfaces.get(subnet.split("/")[4], subnet.split("/")[-1])
    body = {"vm": vm.id, "recovery_point": newest["id"],
            "target": {"type": "vm", "resource_group": f"/subscriptions/{sub}/resourceGroups/rg-restore",
                       "vm_name": f"{vm.name}-restored", "subnet": nic.ip_configurations[0].subnet.id}}
    dry = host.http("POST", "/api/restores", headers=headers, body=json.dumps({**body, "dry_run": True}).encode())
    if dry.status != 200:
        raise SystemExit(f"dry run refused: {dry.status} {dry.json()}")
    kinds = Counter(c["type"].split("/")[-1] for c in dry.json()["plan"]["creates"])
    say(f"POST /api/restores (dry_run) → {dry.status}: nothing created; the plan: steps "
        f"{', '.join(dry.json()['plan']['steps'])}; would create " + ", ".join(f"{n} {k}" for k, n in kinds.items()))
    accepted = host.http("POST", "/api/restores", headers={**headers, "Idempotency-Key": "demo-1"},
                         body=json.dumps(body).encode())
    say(f"POST /api/restores → {accepted.status}, Location {accepted.headers['Location']}, "
        f"Retry-After {accepted.headers['Retry-After']}")
    host.start()
    seen: set[str] = set()
    while True:
        state = host.http("GET", accepted.headers["Location"], headers=headers).json()
        for step in state["steps"]:
            if step["state"] == "done" and step["name"] not in seen:
                seen.add(step["name"])
                say(f"  step {step['name']:<16} done in {step['seconds']:.2f}s ({state['percent']}%)")
        if state["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    host.close()
    say(f"restore {state['id']}: {state['state']}; created " + ", ".join(r.split("/")[-1] for r in state["resources"]))
    made = compute.virtual_machines.get("rg-restore", f"{vm.name}-restored")
    say(f"{made.name}: {getattr(made.hardware_profile.vm_size, 'value', made.hardware_profile.vm_size)}, OS disk {made.storage_profile.os_disk.managed_disk.id.split('/')[-1]} "
        f"(Attach), {len(made.storage_profile.data_disks)} data disk(s), provisioning {made.provisioning_state}")


def site_recovery_demo(az, storage, sub: str, say) -> None:
    """The app's own Site Recovery path through the local host: a VM tagged ``vmkeeper-dr: critical`` is created,
    its Event Grid event queues a replication job, the replication worker makes the Azure-to-Azure objects in the
    target region's vault (VMKEEPER_VAULTS names it: the auto-protect part made a vault per region) and follows the
    VM's item to Protected; then the drill timer plans a replica drill: a test failover into an isolated VNet, the
    test VM's agent Ready, cleaned up, nothing left in the target group."""
    import importlib
    import json
    import os
    import tempfile

    from azure.data.tables import TableClient
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient
    from azure.mgmt.resource.resources.models import GenericResource

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from emulator.testing import StaticCredential
    from shared import wiring
    from shared.azure.ledger import Ledger

    source, target = "westeurope", "northeurope"
    vault_id = json.loads(os.environ["VMKEEPER_VAULTS"])[target]
    vault_rg, vault = vault_id.split("/")[4], vault_id.split("/")[-1]
    resources = az.client(ResourceManagementClient, sub)
    resources.resource_groups.create_or_update("rg-dr", {"location": target})
    group = f"/subscriptions/{sub}/resourceGroups/rg-dr"
    critical = {"schedule": {"every_hours": 4}, "snapshots": {"luns": "all"},
                "replication": {"target_region": target, "target_resource_group": group, "network": {"isolated": True},
                                "cache_storage_accounts": {source: f"{group}/providers/Microsoft.Storage/storageAccounts/"
                                                                   f"vmkcache{source}"}},
                "drill": {"every_days": 7, "point": "replica", "all_vms": True, "keep_hours": 0, "keep_failed_hours": 0,
                          "ready_timeout_minutes": 1}}
    policy_file = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-demo-"), "policies.json")
    with open(policy_file, "w", encoding="utf-8") as fh:
        json.dump({**POLICIES, "policies": {**POLICIES["policies"], "critical": critical}}, fh)
    os.environ.update({"VMKEEPER_POLICY_FILE": policy_file, "VMKEEPER_REPLICATION_QUEUE": "vmkeeper-replication",
                       "VMKEEPER_REPLICATION_SCHEDULE": "0 10,40 * * * *", "VMKEEPER_REPLICATION_RETRY_SECONDS": "1",
                       "VMKEEPER_REPLICATION_RETRY_MAX_SECONDS": "1", "VMKEEPER_DRILL_QUEUE": "vmkeeper-drills",
                       "VMKEEPER_DRILL_SCHEDULE": "0 0 3 * * *"})
    az.settings(lro={"default_seconds": 0.2}, siterecovery={"initial_replication_seconds": 1},
                vm_agent={"ready_after_seconds": 1})
    say(f"policy 'critical' replicates VMs tagged vmkeeper-dr: critical to {target} (vault {vault}, group rg-dr, "
        "an isolated recovery VNet) and drills each replica weekly")
    wired = wiring.use(wiring.Wiring(credential=StaticCredential()))
    host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
    host.ensure_queues()
    events = az.admin("POST", "eventSubscriptions", {"endpoint": host.serve_event_grid("vm_events"), "subscriptionId": sub})
    host.start()
    compute = az.client(ComputeManagementClient, sub)
    rg = next(g.name for g in resources.resource_groups.list() if g.location == source and g.name.startswith("rg-vm"))
    nic = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/networkInterfaces/app-critical-nic"
    resources.resources.begin_create_or_update_by_id(nic, GenericResource(location=source, properties={
        "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": f"/subscriptions/{sub}/resourceGroups/{rg}/"
                              f"providers/Microsoft.Network/virtualNetworks/vnet-{source}/subnets/default"}}}]}),
        api_version="2024-05-01").result()
    tags = {"vmkeeper-policy": "critical", "vmkeeper-dr": "critical"}
    vm = compute.virtual_machines.begin_create_or_update(rg, "app-critical", {
        "location": source, "tags": tags, "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {"osDisk": {"createOption": "FromImage", "managedDisk": {"storageAccountType": "Premium_LRS"}},
                               "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 64}]},
            "networkProfile": {"networkInterfaces": [{"id": nic}]}}}).result()
    say(f"VM app-critical created in {source} with tags {tags}")
    ledger = Ledger(TableClient.from_connection_string(storage.connection_string, "vmkeeperledger"))
    deadline, row = time.monotonic() + 90, None
    while time.monotonic() < deadline and (row or {}).get("outcome") not in ("protected", "failed", "ineligible"):
        time.sleep(0.2)
        row = ledger.get("replication", vm.id.lower())
    if (row or {}).get("outcome") != "protected":
        raise SystemExit(f"replication of app-critical did not end Protected: {row}")
    asr = az.client(SiteRecoveryManagementClient, sub)
    made = [f.name for f in asr.replication_fabrics.list(vault_rg, vault)]
    containers = [c.name for f in made for c in asr.replication_protection_containers.list_by_replication_fabrics(
        vault_rg, vault, f)]
    say(f"replication_worker made in {vault}: fabrics {', '.join(made)}; containers {', '.join(containers)}; policy "
        f"{', '.join(p.name for p in asr.replication_policies.list(vault_rg, vault))}; "
        f"{len(list(asr.replication_protection_container_mappings.list(vault_rg, vault)))} container mappings (there and "
        f"back); {len(list(asr.replication_network_mappings.list(vault_rg, vault)))} network mapping; VNet vmk-dr-{target}")
    detail = json.loads(row["detail"])
    item = next(i for i in asr.replication_protected_items.list(vault_rg, vault) if i.id == detail["item_id"])
    a2a = item.properties.provider_specific_details
    say(f"VM app-critical: {item.properties.protection_state} as {item.name} ({a2a['primaryFabricLocation']} → "
        f"{a2a['recoveryFabricLocation']}, {len(a2a['protectedManagedDisks'])} disks, health "
        f"{item.properties.replication_health})")

    target_before = {r.id for r in resources.resources.list_by_resource_group("rg-dr")}
    host.fire_timer("plan_drills")
    say("plan_drills: a replica drill of app-critical queued")
    deadline, drill = time.monotonic() + 120, None
    while time.monotonic() < deadline and (drill is None or drill.cleanup != "removed"):
        time.sleep(0.3)
        drill = next(iter(wired.drills.history()), None)
    # Created after this slot was planned, app-critical has no snapshot set yet: the slot planned again takes it
    # (the others' sets are there: nothing new for them).
    host.fire_timer("plan_slot")
    deadline, snaps = time.monotonic() + 30, []
    while time.monotonic() < deadline:
        snaps = [s for s in compute.snapshots.list_by_resource_group(rg) if s.tags.get("vmkeeper-vm") == vm.id.lower()]
        if len(snaps) == 2 and all(s.provisioning_state == "Succeeded" for s in snaps):
            break
        time.sleep(0.2)
    az.admin("DELETE", f"eventSubscriptions/{events['id']}")
    host.close()
    if drill is None or drill.result != "passed" or drill.cleanup != "removed":
        raise SystemExit(f"the replica drill did not pass and clean up: {drill}")
    say(f"drill {drill.id}: {drill.result} — the newest recovery point test-failed over into the drill's own isolated "
        f"VNet, the test VM's agent Ready: RTO {drill.rto_seconds:.1f}s; test failover cleaned up ({drill.cleanup})")
    left = {r.id for r in resources.resources.list_by_resource_group("rg-dr")} - target_before
    say("target group rg-dr after the drill: " + ("nothing of the test left" if not left else f"LEFT: {sorted(left)}"))
    say(f"plan_slot again: app-critical's first snapshot set ({len(snaps)} snapshots, slot "
        f"{snaps[0].tags['vmkeeper-slot'][11:16] if snaps else '?'}); nothing new for the VMs that had theirs")
    steps = Counter(i["function"] for i in host.invocations)
    say(f"function invocations: {dict(steps)}; failed: {sum(1 for i in host.invocations if not i['ok'])}")


def operator_demo(az, storage, subs: list[str], say) -> None:
    """The compliance timer through the host, its alerts delivered by the emulator's custom topic to a local
    subscriber, then the CLI as an operator runs it: the compliance table and the report page."""
    import importlib
    import os
    import tempfile
    from collections import Counter

    from azure.mgmt.eventgrid import EventGridManagementClient
    from azure.mgmt.eventgrid.models import EventSubscription, Topic, WebHookEventSubscriptionDestination
    from azure.mgmt.resource.resources import ResourceManagementClient

    import function_app
    from devtools.functions_host import LocalFunctionsHost
    from emulator.eventgrid.subscriber import WebHookSubscriber
    from emulator.testing import StaticCredential
    from shared import wiring
    from shared.cli.main import UNPROTECTED, cli
    from shared.report.verdict import verdict

    az.client(ResourceManagementClient, subs[0]).resource_groups.create_or_update("rg-ops", {"location": "westeurope"})
    eg = az.client(EventGridManagementClient, subs[0], polling_interval=0)
    topic = eg.topics.begin_create_or_update("rg-ops", "vmkeeper-alerts", Topic(
        location="westeurope", input_schema="CloudEventSchemaV1_0", disable_local_auth=True)).result()
    with WebHookSubscriber() as hook:
        eg.event_subscriptions.begin_create_or_update(topic.id, "oncall", EventSubscription(
            destination=WebHookEventSubscriptionDestination(endpoint_url=hook.url),
            event_delivery_schema="CloudEventSchemaV1_0")).result()
        say(f"custom topic {topic.name} (CloudEvents 1.0, keys off) → a local WebHook subscriber")
        os.environ.update({"VMKEEPER_COMPLIANCE_SCHEDULE": "0 */30 * * * *", "VMKEEPER_ALERTS_TOPIC_ENDPOINT": topic.endpoint,
                           "VMKEEPER_ALERTS_TABLE": "vmkeeperalerts"})
        wiring.use(wiring.Wiring(credential=StaticCredential()))
        host = LocalFunctionsHost(importlib.reload(function_app).app, storage.connection_string, visibility_timeout=1)
        host.fire_timer("compliance_evaluation")
        host.close()
        az.wait_for_topic_deliveries(timeout=30)
        kinds = Counter(e["type"] for e in hook.events)
        say("compliance_evaluation: every VM judged; alerts delivered: "
            + (", ".join(f"{n} {t}" for t, n in sorted(kinds.items())) or "none")
            + " (protection.missing: one per VM not protected as its policy says; retention.deleted: one per set)")
    obj = {"credential": StaticCredential()}
    print("\n`vmkeeper status --recorded`, only the VMs that need action (the report lists every VM):")
    cli.main(["status", "--recorded", *(f"--state={s}" for s in UNPROTECTED)], obj=obj, standalone_mode=False)
    path = os.path.join(tempfile.mkdtemp(prefix="vmkeeper-report-"), "report.html")
    cli.main(["report", "--file", path], obj=obj, standalone_mode=False)
    data = wiring.current().reports.data()
    judged = Counter(v.state for v in data.vms)
    made = ", ".join(sorted(v.name for v in data.vms if v.name in DEMO_VMS))
    say(f"{len(data.vms)} VMs judged: the {len(data.vms) - len(DEMO_VMS)} seeded and the {len(DEMO_VMS)} made above "
        f"({made}); {judged['opted_out']} opted out; the restored VM is no fleet member; "
        f"{len(data.deletions)} retention deletions on the page")
    print(f"\nVerdict: {verdict(data)}")
    print(f"Open the report: {path}")
    print("Try it yourself: `make up` runs local Azure and the app with a seeded fleet until Ctrl-C, writes "
          "local.settings.json and prints what to try; then, with .venv/bin on your PATH:\n"
          "  vmkeeper --settings local.settings.json status\n"
          "  vmkeeper --settings local.settings.json jobs --failed\n"
          "  vmkeeper --settings local.settings.json report --file report.html")


DEMO_VMS = ("app-gold", "app-default", "lab-optout", "app-critical")  # the VMs the demo creates (events, not seed)


if __name__ == "__main__":
    sys.exit(main())
