"""
UserManager - Custom task implementations
"""
from typing import Any, Dict
from datetime import datetime
from flowlang import TaskRegistry


def create_task_registry() -> TaskRegistry:
    """Create and register all tasks for UserManager flow."""
    registry = TaskRegistry()

    @registry.register(
        'TransformUser',
        description='Transform and validate user data from database'
    )
    async def transform_user(user_data: Dict[str, Any]) -> Dict[str, Any]:
        """
        Transform raw database user data into application format.

        Args:
            user_data: Raw user data from database

        Returns:
            Dict with 'user' containing transformed data
        """
        if not user_data:
            raise ValueError("User not found")

        # Validate required fields
        required_fields = ['id', 'email', 'name']
        for field in required_fields:
            if field not in user_data or user_data[field] is None:
                raise ValueError(f"Missing required field: {field}")

        # Transform data
        transformed = {
            'id': user_data['id'],
            'email': user_data['email'],
            'name': user_data['name'],
            'active': user_data.get('active', False),
            'display_name': user_data['name'],
            'last_login': user_data.get('last_login').isoformat() if user_data.get('last_login') else None,
            'status': 'active' if user_data.get('active') else 'inactive'
        }

        return {'user': transformed}

    @registry.register(
        'UpdateLastLogin',
        description='Update user last login timestamp'
    )
    async def update_last_login(
        user_id: int,
        connection  # Connection is automatically injected!
    ) -> Dict[str, Any]:
        """
        Update the last_login timestamp for a user.

        The 'connection' parameter triggers automatic database
        connection injection by FlowLang.

        Args:
            user_id: User ID to update
            connection: Database connection (injected automatically)

        Returns:
            Dict with 'updated' boolean
        """
        query = """
            UPDATE users
            SET last_login = NOW()
            WHERE id = $1
        """

        try:
            result = await connection.execute(query, user_id)

            # Parse result (format: "UPDATE 1")
            rows_affected = 0
            if result:
                parts = result.split()
                if len(parts) > 1 and parts[-1].isdigit():
                    rows_affected = int(parts[-1])

            return {'updated': rows_affected > 0}

        except Exception as e:
            raise Exception(f"Failed to update last login: {e}") from e

    return registry
