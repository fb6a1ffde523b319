"""ActiveMQ Classic as a local AMQP 1.0 broker: one instance folder, one AMQP connector on loopback.

The distribution's ``activemq.xml`` is not used: the instance gets a configuration of its own
(written on every start, from the settings) with a KahaDB store in the instance folder, so
queues and persistent messages survive a restart or a SIGKILL, no JMX, no web console and
one ``amqp://`` transport connector. Destinations are always auto-created (a bare address
is a queue; ``queue://`` and ``topic://`` prefixes choose explicitly): a send to an address
nobody declared is stored in a new queue, never dropped. (ActiveMQ's authorization map
grants the union of all matching entries, so it cannot carve out never-created names the
way Artemis's ``noauto.#`` does.) With ``AMQPS_PORT`` and a PKCS#12 key store (``ARTEMIS_TLS_KEYSTORE``) an ``amqp+ssl://``
connector serves TLS beside it. Anonymous clients are allowed; the configured user/password works over SASL PLAIN and a
wrong password is refused.

The JVM is started directly (``java -jar bin/activemq.jar start``), not through the
``bin/activemq`` shell script, so the pid file names the broker itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from xml.sax.saxutils import quoteattr

from services.broker import LocalBroker
from services.process import ServiceError, java_executable, port_stays_busy
from services.settings import ServiceSettings


def _config(settings: ServiceSettings, data: Path) -> str:
    s = settings
    user, password = quoteattr(s.artemis_user), quoteattr(s.artemis_password)
    uri = (
        f"amqp://{s.host}:{s.amqp_port}?maximumConnections=1000&amp;wireFormat.maxFrameSize=104857600"
        "&amp;transport.transformer=jms"
    )
    tls = ssl_context = ""
    if s.amqps_port and s.tls_keystore:
        ssl_context = (
            f"<sslContext><sslContext keyStore={quoteattr('file:' + str(s.tls_keystore))} "
            f'keyStorePassword={quoteattr(s.tls_keystore_password)} keyStoreType="PKCS12"/></sslContext>'
        )
        tls = f'<transportConnector name="amqps" uri="amqp+ssl://{s.host}:{s.amqps_port}?transport.needClientAuth=false"/>'
    return f"""<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans http://www.springframework.org/schema/beans/spring-beans.xsd
  http://activemq.apache.org/schema/core http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="amqp-spark-kafka" dataDirectory="{data}"
          useJmx="false" persistent="true" schedulerSupport="false" advisorySupport="false">
    <persistenceAdapter><kahaDB directory="{data}/kahadb"/></persistenceAdapter>
    {ssl_context}
    <plugins>
      <simpleAuthenticationPlugin anonymousAccessAllowed="true">
        <users>
          <authenticationUser username={user} password={password} groups="users,admins"/>
        </users>
      </simpleAuthenticationPlugin>
    </plugins>
    <systemUsage>
      <systemUsage>
        <memoryUsage><memoryUsage percentOfJvmHeap="70"/></memoryUsage>
        <storeUsage><storeUsage limit="2 gb"/></storeUsage>
        <tempUsage><tempUsage limit="1 gb"/></tempUsage>
      </systemUsage>
    </systemUsage>
    <transportConnectors>
      <transportConnector name="amqp" uri="{uri}"/>
      {tls}
    </transportConnectors>
  </broker>
</beans>
"""


class ActiveMQService(LocalBroker):
    """Configure, start, probe and stop one local ActiveMQ Classic broker."""

    def __init__(self, settings: ServiceSettings, activemq_home: Path) -> None:
        super().__init__(settings, "activemq")
        self.home = activemq_home

    def _configure(self) -> Path:
        conf = self.instance / "conf"
        data = self.instance / "data"
        if not conf.is_dir():
            shutil.copytree(self.home / "conf", conf)  # log4j2.properties and friends
        data.mkdir(parents=True, exist_ok=True)
        (self.instance / "tmp").mkdir(exist_ok=True)
        config = conf / "amqp-broker.xml"
        config.write_text(_config(self.settings, data))
        return config

    def start(self) -> None:
        """Start the broker in the background (configuring its instance); returns at once."""
        if self.process.pid is not None:
            return
        s = self.settings
        if port_stays_busy(s.host, s.amqp_port):
            raise ServiceError(
                f"port {s.amqp_port} on {s.host} is already in use by another process: stop it, or choose another with AMQP_PORT=..."
            )
        config = self._configure()
        java = java_executable()
        cmd = [
            *s.launcher(), java, "-Xms64m", f"-Xmx{s.jvm_heap}",
            "-Djava.awt.headless=true",
            f"-Dactivemq.classpath={self.instance / 'conf'}",
            f"-Dactivemq.home={self.home}", f"-Dactivemq.base={self.instance}",
            f"-Dactivemq.conf={self.instance / 'conf'}", f"-Dactivemq.data={self.instance / 'data'}",
            f"-Dlog4j.configurationFile=file:{self.instance / 'conf' / 'log4j2.properties'}",
            f"-Djava.io.tmpdir={self.instance / 'tmp'}",
            "-jar", str(self.home / "bin" / "activemq.jar"), "start", f"xbean:file:{config}",
        ]  # fmt: skip
        self.process.start(cmd, cwd=self.instance)
