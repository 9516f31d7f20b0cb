"""Company/project configuration in the company-data table."""

from typing import Any

from botocore.exceptions import ClientError

from ai_comms.models.tenant import ADDRESS_KEY_PREFIX, ADDRESS_SORT_KEY, AddressRoute, ProjectConfig
from ai_comms.store.dynamo import from_item, to_item


class AddressTaken(Exception):
    """Another project already owns this channel address."""


class TenantRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._db = dynamodb
        self._table = table

    def get_project(self, company_id: str, project_id: str) -> ProjectConfig | None:
        answer = self._db.get_item(
            TableName=self._table,
            Key={"company_id": {"S": company_id}, "project_id": {"S": project_id}},
        )
        if "Item" not in answer:
            return None
        data = from_item(answer["Item"])
        data.pop("item_type", None)
        data.pop("updated_at", None)
        return ProjectConfig.model_validate(data)

    def find_route(self, address: str) -> AddressRoute | None:
        answer = self._db.get_item(
            TableName=self._table,
            Key={"company_id": {"S": ADDRESS_KEY_PREFIX + address}, "project_id": {"S": ADDRESS_SORT_KEY}},
        )
        if "Item" not in answer:
            return None
        item = from_item(answer["Item"])
        return AddressRoute(
            address=address,
            channel=item["channel"],
            company_id=item["route_company_id"],
            project_id=item["route_project_id"],
        )

    def put_project(self, project: ProjectConfig, updated_at: str) -> None:
        """Write the project and claim its channel addresses in one transaction.

        A claim succeeds only when the address is free or already this project's, so two tenants can
        never answer for one number (an index could not enforce that).
        """
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": to_item(
                        {"item_type": "project", "updated_at": updated_at, **project.model_dump(mode="json")}
                    ),
                }
            }
        ]
        for channel, settings in project.channels.items():
            items.append(
                {
                    "Put": {
                        "TableName": self._table,
                        "Item": to_item(
                            {
                                "company_id": ADDRESS_KEY_PREFIX + settings.address,
                                "project_id": ADDRESS_SORT_KEY,
                                "item_type": "address",
                                "channel": channel,
                                "route_company_id": project.company_id,
                                "route_project_id": project.project_id,
                                "updated_at": updated_at,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(company_id) OR "
                        "(route_company_id = :c AND route_project_id = :p)",
                        "ExpressionAttributeValues": {
                            ":c": {"S": project.company_id},
                            ":p": {"S": project.project_id},
                        },
                    }
                }
            )
        try:
            self._db.transact_write_items(TransactItems=items)
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise AddressTaken("a channel address belongs to another project") from error
            raise

    def list_projects(self) -> list[ProjectConfig]:
        """Every project (an operator's listing; the request paths never scan)."""
        projects: list[ProjectConfig] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "FilterExpression": "item_type = :t",
            "ExpressionAttributeValues": {":t": {"S": "project"}},
        }
        while True:
            page = self._db.scan(**kwargs)
            for raw in page.get("Items", []):
                data = from_item(raw)
                data.pop("item_type", None)
                data.pop("updated_at", None)
                projects.append(ProjectConfig.model_validate(data))
            if "LastEvaluatedKey" not in page:
                return projects
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
