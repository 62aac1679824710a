"""The API Gateway side: one integration definition, a stage emulator, and the AWS artifacts.

- ``apigw.integration``: the mapping template (``templates/apigw/sqs_send_message.vtl``) and the
  integration settings (``templates/apigw/integration.json``): the single source of truth.
- ``apigw.vtl``: renders mapping templates as API Gateway does (airspeed + $input/$util/$context).
- ``apigw.emulator``: ``serve(StageConfig) -> RunningStage``, an HTTPS REST API stage in front of
  SQS (moto); ``apigw.process.start_emulator_process`` runs it as ``hookshift apigw serve``.
- ``apigw.sqs``: the integration request to SQS, and which SQS answers are modelled.
- ``apigw.tls``: on-the-fly certificates (trustme) and SNI handling.
- ``apigw.client``: HTTPS to a loopback address under a real host name (SNI, verification).
- ``apigw.artifacts``: OpenAPI, CloudFormation and Terraform from the same integration.
"""
