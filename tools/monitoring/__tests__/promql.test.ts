import { metricNamesIn } from '../promql';

describe('metricNamesIn', () => {
  it.each([
    ['time() - wireguard_latest_handshake_seconds > 300 and wireguard_latest_handshake_seconds > 0', ['wireguard_latest_handshake_seconds']],
    ['rate(wireguard_sent_bytes_total{interface="wg0"}[$__rate_interval])', ['wireguard_sent_bytes_total']],
    ['sum by (agent, instance) (increase(wgctl_self_heals_total[15m])) >= 3', ['wgctl_self_heals_total']],
    ['wgctl_killswitch_loaded == 0 and on(job, instance) wgctl_mac_up == 1', ['wgctl_killswitch_loaded', 'wgctl_mac_up']],
    ['up{job=~"wgctl-.*"} == 0 or wgctl_agent_reachable == bool 0', ['up', 'wgctl_agent_reachable']],
    ['label_replace(wgctl_uplink_info, "if", "$1", "interface", "(.*)") * on(instance) group_left(version) wgctl_agent_info', ['wgctl_uplink_info', 'wgctl_agent_info']],
    ['max_over_time(wgctl_tunnel_liveness{state="dead"}[1h:1m] offset 5m) * 1e3 + 0x10', ['wgctl_tunnel_liveness']],
    ['topk(3, wgctl_route_present{instance="${instance}"}) unless wgctl_routes_present', ['wgctl_route_present', 'wgctl_routes_present']],
    ['vector(1) + scalar(wgctl_roams_total @ 1700000000)', ['wgctl_roams_total']],
  ])('%s', (expr, names) => {
    expect(metricNamesIn(expr)).toEqual(names);
  });

  it('sees a misspelt name, so a dashboard cannot read a metric nobody exports unnoticed', () => {
    expect(metricNamesIn('wgctl_killswitch_load == 0')).toEqual(['wgctl_killswitch_load']);
  });
});
