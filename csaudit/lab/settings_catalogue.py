"""Metadata listConfigurations returns next to each value (category, description...).

Only what the demo and an audit look at; unknown names get neutral metadata, like
a plugin-defined key would. Descriptions are the real ones (Config.java / ConfigKeys).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class SettingInfo:
    category: str = "Advanced"
    description: str = ""
    default: str | None = None
    dynamic: bool = False
    component: str = "management-server"
    type: str = "String"
    scope: str = "global"  # "zone" settings accept listConfigurations zoneid=


CATALOGUE = {
    "host": SettingInfo("Advanced", "The ip address of management server. This can also accept "
                        "comma separated addresses.", "localhost", component="ApiServiceConfiguration"),
    "port": SettingInfo("Advanced", "Port to listen on for agent connection.", "8250", type="Integer"),
    "integration.api.port": SettingInfo(
        "Advanced", "Integration (unauthenticated) API port. To disable set it to 0 or negative.",
        "0", component="ApiServer", type="Integer"),
    "default.page.size": SettingInfo("Advanced", "Default page size for API list* commands",
                                     "500", type="Long"),
    "consoleproxy.sslEnabled": SettingInfo("Console Proxy", "Enable SSL for console proxy",
                                           "false", type="Boolean"),
    "consoleproxy.url.domain": SettingInfo("Console Proxy", "Console proxy url domain - "
                                           "domainName,privateip", "", scope="zone"),
    "secstorage.ssl.cert.domain": SettingInfo("Advanced", "SSL certificate used to encrypt copy "
                                              "traffic between zones", ""),
    "secstorage.encrypt.copy": SettingInfo("Advanced", "Use SSL method used to encrypt copy "
                                           "traffic between zones", "false", type="Boolean",
                                           scope="zone"),
    "secstorage.allowed.internal.sites": SettingInfo(
        "Advanced", "Comma separated list of cidrs internal to the datacenter that can host "
        "template download servers, please note 0.0.0.0 is not a valid site"),
    "ntp.server.list": SettingInfo("Advanced", "Comma separated list of NTP servers to "
                                   "configure in System VMs", ""),
    "control.cidr": SettingInfo("Advanced", "Changes the cidr for the control network traffic. "
                                "Defaults to using link local.", "169.254.0.0/16"),
    "control.gateway": SettingInfo("Advanced", "gateway for the control network traffic",
                                   "169.254.0.1"),
    "management.network.cidr": SettingInfo("Advanced", "The cidr of management server network"),
    "endpoint.url": SettingInfo("Advanced", "API end point. Can be used by CS components/services "
                                "deployed remotely, for sending CS API requests",
                                "http://localhost:8080/client/api"),
    "api.key.access": SettingInfo("Advanced", "Determines whether API (api-key/secret-key) based "
                                  "authentication is allowed or not", "true", True, type="Boolean"),
    "enforce.post.requests.and.timestamps": SettingInfo(
        "Advanced", "Enable/Disable whether the ApiServer only accepts POST requests and requires "
        "timestamps.", "false", component="ApiServer", type="Boolean"),
    "json.content.type": SettingInfo("Advanced", "Http response content type for .js files "
                                     "(default is text/javascript)", "application/json; charset=UTF-8"),
    "allow.user.create.projects": SettingInfo("Project Defaults", "If regular user can create a "
                                              "project; true by default", "true", type="Boolean"),
    "secstorage.proxy": SettingInfo("Advanced", "http proxy used by ssvm, in http://username:password@proxyserver:port "
                                    "format"),
    "alert.smtp.host": SettingInfo("Alert", "SMTP hostname used for sending out email alerts."),
    "alert.smtp.port": SettingInfo("Alert", "Port the SMTP server is listening on.", "465", type="Integer"),
    "prometheus.exporter.enable": SettingInfo("Advanced", "Enable the prometheus exporter plugin, management server "
                                              "restart needed.", "false", type="Boolean"),
    "prometheus.exporter.port": SettingInfo("Advanced", "The prometheus exporter server port", "9595", type="Integer"),
    "prometheus.exporter.allowed.ips": SettingInfo("Advanced", "List of comma separated prometheus server ips (with "
                                                   "no spaces) that should be allowed to access the URLs",
                                                   "127.0.0.1"),
    "vmware.additional.vnc.portrange.start": SettingInfo("Advanced", "Start port number of additional VNC port range",
                                                         "50000", type="Integer"),
    "vmware.additional.vnc.portrange.size": SettingInfo("Advanced", "Start port number of additional VNC port range",
                                                        "1000", type="Integer"),
    "consoleproxy.cmd.port": SettingInfo("Console Proxy", "Console proxy command port that is used to communicate "
                                         "with management server", "8001", type="Integer"),
}


def info(name: str) -> SettingInfo:
    return CATALOGUE.get(name, SettingInfo())
